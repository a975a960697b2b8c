"""The super-timeline: records fanned out into rows, sorted in bounded memory, and written
for Timesketch and plaso users."""
