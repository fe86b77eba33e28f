"""Qualification: challenge suites run through the production station, Knapp statistics, signed reports.

- :mod:`.runner`: a suite's challenge sets as batches of the production station;
- :mod:`.stats`: per-item rejection probabilities (Knapp), detection and false reject rates with
  intervals, pass or fail by the approved criteria;
- :mod:`.report`: the report as a PDF with its hashes and signature block.
"""
