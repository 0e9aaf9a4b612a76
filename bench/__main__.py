"""Run every benchmark with its default sizes: `python -m bench` (or `make bench`)."""

from bench import attendance, flash_sale, join_storm, webhooks

webhooks.main([])
print()
join_storm.main([])
print()
flash_sale.main([])
print()
attendance.main([])
