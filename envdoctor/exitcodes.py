"""Exit codes, in one place. Library code never calls sys.exit; the CLI maps outcomes to these."""

OK = 0  # clean, or nothing at or above --fail-on
FINDINGS = 1  # findings at or above --fail-on (or a fix/smoke/build that failed)
USAGE = 2  # the user's command line or input file is wrong
INTERNAL = 3  # envdoctor itself failed

# The one table of exit statuses, shown at the end of every command's --help and in docs/ci.md.
HELP_EPILOG = """\b
Exit status (the same table for every command):
  0  success: nothing at or above --fail-on (check, require), the reports
     are the same (diff), done (fix, build, smoke), log explained (explain)
  1  findings at or above --fail-on (check, require), the reports differ
     (diff), the fix, build or smoke failed or was refused, nothing
     recognised in the log (explain)
  2  usage error: a bad option, an unreadable input file or report, an
     invalid requirement table (the message names the key)
  3  envdoctor itself failed, or one of its checks crashed"""
