"""The domain: experiment specs, the SQLite store, assignment, the decide/reward service, the learner."""
