"""On-disk formats that builder/ writes and train/ reads: MOTChallenge files, a build's layout, JSON files."""
