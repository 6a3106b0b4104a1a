"""Views of a finished run: the text timeline for failures, plain data (``summary.json``), the report
folder's files and index, and the HTML timeline."""
