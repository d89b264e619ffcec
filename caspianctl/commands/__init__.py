"""One module per command group; each `cmd_*` takes a Ctl and returns an exit status."""
