"""securecmr_medical: de-identified medical image and report retrieval on securecmr (WIP)."""
