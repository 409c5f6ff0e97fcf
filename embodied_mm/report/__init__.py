"""Reports made for people from evaluation runs (``report.html``)."""
