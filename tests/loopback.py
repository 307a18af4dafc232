"""The one TLS context the tests' HTTP clients share: every server they call is on loopback."""

from opsctl.tls import tls_context

# httpx builds a TLS context, certifi's CA bundle loaded, for every client and every
# httpx.get(): 27 ms of CPU each, and the suite's polling loops made thousands of them while
# the bots they waited for were starting on the same two cores. Passing one context is
# httpx's own advice (https://www.python-httpx.org/advanced/ssl/).
TLS = tls_context()
