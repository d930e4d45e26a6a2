"""A test that must fail: how ``require=True`` reports under Django's runner."""

from telex.django.test import ChannelTestCase


class FailingTests(ChannelTestCase):
    def test_nothing_was_sent(self):
        self.get_next_message("never.sent", require=True)
