"""The payments consumer group is one of the stack's, so the dev stack creates its retry topic."""

from waybill.common import topics
from waybill.payments.subscriptions import GROUP


def test_the_consumer_group_has_a_retry_topic_in_the_stack() -> None:
    assert GROUP in topics.CONSUMER_GROUPS
    assert topics.retry_topic(GROUP) in topics.ALL_TOPICS
