"""Reports built from the records: the batch report (JSON + PDF) and the PDF parts reports share."""
