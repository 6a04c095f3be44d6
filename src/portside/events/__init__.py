"""Domain events: what changed, published once by the domain services in the transaction that made
the change (a transactional outbox), and handed to subscribers (the audit log, webhooks, ...) after
commit through the job system."""
