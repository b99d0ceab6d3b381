"""The GitHub App's webhook receiver (ASGI): verify, deduplicate, enqueue; nothing else.

It holds no state in the process (deliveries and jobs live in Postgres), so several copies can
run behind a load balancer. Reviews run in ``review_agent.worker``.
"""
