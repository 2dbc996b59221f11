"""Report: turn a run store's tables into a self-contained HTML page (and, later, the gate)."""
