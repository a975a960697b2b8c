"""The super-timeline: records fanned out into rows, sorted in bounded memory, written for Timesketch and plaso users."""
