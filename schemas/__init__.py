"""Topic names, typed records and errors shared by every stage of the pipeline."""
