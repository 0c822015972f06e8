"""The notifier consumer group is one of the stack's, so the dev stack creates its retry topic."""

from waybill.common import topics
from waybill.notifier.subscriptions import CONSUMER_GROUP


def test_the_consumer_group_has_a_retry_topic_in_the_stack() -> None:
    assert CONSUMER_GROUP in topics.CONSUMER_GROUPS
    assert topics.retry_topic(CONSUMER_GROUP) in topics.ALL_TOPICS
