package conv

import "time"

// ContactEnded says a contact (conversation) is over: closed by an agent,
// abandoned, or a bot-only contact gone idle. Handoff emits it; surveys
// schedules the NPS survey from it (wired in app).
type ContactEnded struct {
	Conv         ConvID      `json:"conv"`
	Customer     CustomerID  `json:"customer"`
	Channel      string      `json:"channel"`
	ChannelType  ChannelType `json:"channel_type"`
	ExternalUser string      `json:"external_user"`
	// Account is the KF open_kfid (KF channels).
	Account string  `json:"account,omitempty"`
	Store   StoreID `json:"store"`
	// Agent is the agent who owned the conversation ("" for bot-only).
	Agent     string `json:"agent,omitempty"`
	HandedOff bool   `json:"handed_off"`
	// Entries are the KB entries that answered during the contact.
	Entries []string `json:"entries,omitempty"`
	// Disposition is the work-order type chosen on close (故障报修, 服务申请,
	// 建议, 意见, 咨询, 投诉, 举报, 表扬); Resolved its resolved flag.
	Disposition string `json:"disposition,omitempty"`
	Resolved    bool   `json:"resolved"`
	// Outcome is "closed", "abandoned" or "bot_idle".
	Outcome   string    `json:"outcome"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// LastCustomerMsgAt opens the channel's send window (OA/KF 48 h).
	LastCustomerMsgAt time.Time `json:"last_customer_msg_at"`
	// KFCode is the end-of-session msg_code (20 s, one message) when the
	// contact ended on a KF session end.
	KFCode string `json:"kf_code,omitempty"`
}
