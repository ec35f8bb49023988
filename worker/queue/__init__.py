"""The queue machinery askq owns on top of arq: its ``Worker`` subclass, claims in one round trip,
wake-ups instead of fixed polls, short renewed leases, and the rejection of jobs it will not run."""
