"""Messages from an organizer to the ticket holders of one webinar."""
