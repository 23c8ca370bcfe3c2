"""B40 Mutual Aid server: API, board and the dispatch core."""
