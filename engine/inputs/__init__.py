"""Evidence inputs: read raw evidence (attestations, scans, SLO state, approvals) into facts."""
