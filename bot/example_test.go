package bot_test

import (
	"context"
	"fmt"

	"kefu/bot"
	"kefu/bot/kb"
)

// Example shows the gateway's use of the bot: build it once, then call
// Respond for every customer text message and send Decision.Reply.
func Example() {
	entries := []kb.Entry{
		{ID: "hours", Question: "门店营业时间是几点到几点", Similar: []string{"几点关门", "几点开门"}, Answer: "每天 9:00–22:00 营业。"},
		{ID: "refund", Question: "退款多久到账", Similar: []string{"钱什么时候退回来"}, Answer: "1–3 个工作日原路退回。"},
	}
	cfg := bot.DefaultConfig()
	cfg.AskRating = false
	b, err := bot.NewWithEntries(cfg, entries, bot.NewMemoryState(), nil)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	for _, text := range []string{"请问几点关门？", "转人工"} {
		d, _ := b.Respond(context.Background(), bot.Query{Text: text, Customer: "wx:demo"})
		fmt.Println(d.Action, d.Reply.Text)
	}
	// Output:
	// answer 每天 9:00–22:00 营业。
	// handoff 好的，正在为您转接人工客服，请稍候。
}
