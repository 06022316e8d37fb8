"""Exit codes, in one place. Library code never calls sys.exit; the CLI maps outcomes to these."""

OK = 0  # clean, or nothing at or above --fail-on
FINDINGS = 1  # findings at or above --fail-on (or a fix/smoke/build that failed)
USAGE = 2  # the user's command line or input file is wrong
INTERNAL = 3  # envdoctor itself failed
