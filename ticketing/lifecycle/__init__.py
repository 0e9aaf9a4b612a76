"""What happens to a sale after it was made, across the rooms it touches: cancelling a webinar,
the sweep that ends webinars, an organizer revoking or restoring a ticket."""
