"""Every module that registers job kinds or periodic tasks, imported so the worker knows them.

One import per module; add yours here when it registers a @job or a @periodic.
"""

from __future__ import annotations

import ticketing.access.end_meeting  # noqa: F401
import ticketing.attendance.certificates  # noqa: F401
import ticketing.attendance.events  # noqa: F401
import ticketing.attendance.kick  # noqa: F401
import ticketing.attendance.mails  # noqa: F401
import ticketing.jobs.maintenance  # noqa: F401
import ticketing.mail.confirmations  # noqa: F401
import ticketing.mail.jobs  # noqa: F401
import ticketing.mail.signin  # noqa: F401
import ticketing.payments.reconcile  # noqa: F401
import ticketing.payments.refunds  # noqa: F401
import ticketing.webinars.lifecycle  # noqa: F401
