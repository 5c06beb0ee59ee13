"""What every Voxline package shares and nothing else: settings base, logging, retries, metrics.

It imports none of `control`, `runtime`, `telephony` or `knowledge`, so each of them may use it.
"""
