"""Reading results back: the report (tables, plots, markdown) and the comparison of two runs."""
