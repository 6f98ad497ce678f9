"""What every component shares: the clock, the scheduler, the journal, fault injection, signing,
money, the Egyptian calendar and data, the admin plane and the server runner.

The reference service may use this package too (clock and admin plane); nothing here knows any
party's domain.
"""
