"""Run every benchmark with its default sizes: `python -m bench` (or `make bench`)."""

from bench import attendance, attendee_list, flash_sale, join_storm, mail_drain, webhooks

webhooks.main([])
print()
join_storm.main([])
print()
mail_drain.main([])
print()
flash_sale.main([])
print()
attendance.main([])
print()
attendee_list.main([])
