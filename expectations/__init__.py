"""Great Expectations suites derived from the contract and the market rules."""
