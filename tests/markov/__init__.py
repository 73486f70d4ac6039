"""Tests of the Markov-chain view of tiny GPTs."""
