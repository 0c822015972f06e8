"""``waybill load``: place orders over HTTP at an offered rate and report how they settle.

One module per concern: ``schedule`` (mix, open-loop arrivals, options), ``client`` (the
target, order bodies, the generator), ``outcomes`` (live settled count, each order's fate
from its events), ``stats`` (percentiles, rates, the summary), ``output`` (what is printed),
``command`` (the command itself). ``waybill bench saga`` reuses the generator and outcomes.
"""
