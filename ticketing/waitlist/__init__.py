"""The waitlist of sold-out webinars: joining, offers that hold freed seats, the organizer's view."""
