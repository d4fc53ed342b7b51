"""pubmine CPU side: config, parsing (Beam), orchestration (Ray), storage and publishing."""
