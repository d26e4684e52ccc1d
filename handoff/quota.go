package handoff

import (
	"context"
	"time"

	"kefu/conv"
)

// bookKey is where versions before the sender held queued sends kept the
// desk's own per-customer send count. Nothing writes it now; Forget still
// deletes what older versions left.
func bookKey(c conv.CustomerID) string { return "ho:b:{" + string(c) + "}" }

// remaining is what the channel still allows for c's customer: the
// sender's book counts delivered and queued messages alike (desk sends are
// queued with RefuseOverQuota, so a slot shown here is a slot the next
// reply gets); -1 means the channel has no per-customer limit.
func (s *Service) remaining(ctx context.Context, c *conv.Conversation) (int, time.Time, error) {
	rem, until, err := s.send.Quota(ctx, c.Channel, c.ExternalUser, c.LastCustomerMsgAt)
	if err != nil || rem < 0 {
		return rem, until, err
	}
	return max(rem, 0), until, nil
}
