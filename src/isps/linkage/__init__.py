"""The Single Beneficiary Registry: every program's beneficiary lists in one place, resolved to
persons (exact CNIC first, then probabilistic linkage with Splink), with a clerical review queue,
merge and unmerge with history, and duplication and concentration reports."""
