"""The team workflow: accounts, projects, assignment, the label lifecycle, review, analytics."""
