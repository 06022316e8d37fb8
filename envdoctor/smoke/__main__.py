"""``python -m envdoctor.smoke``: the smoke command without the envdoctor command group."""
from envdoctor.cli_smoke import smoke_command

if __name__ == "__main__":
    smoke_command(prog_name="envdoctor smoke")
