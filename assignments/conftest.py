"""nbval runs the source notebooks only: nbgrader's generated folders are not ours to test here
(tests/test_assignments.py generates and grades them in a temporary course directory)."""

collect_ignore = ["release", "submitted", "autograded", "feedback", "jupyter"]
