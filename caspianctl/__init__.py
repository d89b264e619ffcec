"""caspianctl: the command-line client of the CASPIAN hub, built on the generated caspian.v1 stubs."""
