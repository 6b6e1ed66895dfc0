"""The demo pipeline (``shiftadd-demo``): stage runner, log streaming, stages and report."""
