"""One module per corpus; each defines `CORPUS`, a `eegmamba_cli.data.base.Corpus`."""
