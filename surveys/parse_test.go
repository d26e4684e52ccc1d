package surveys

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

type parseCase struct {
	in      string
	kind    ReplyKind
	score   int
	comment string // checked when non-empty
	restQ   bool
}

func sc(in string, score int) parseCase { return parseCase{in: in, kind: ReplyScore, score: score} }
func scc(in string, score int, comment string) parseCase {
	return parseCase{in: in, kind: ReplyScore, score: score, comment: comment}
}
func q(in string) parseCase     { return parseCase{in: in, kind: ReplyQuestion} }
func other(in string) parseCase { return parseCase{in: in, kind: ReplyOther} }
func oor(in string) parseCase   { return parseCase{in: in, kind: ReplyOutOfRange} }
func opt(in string) parseCase   { return parseCase{in: in, kind: ReplyOptOut} }

// handCases are replies as customers type them in WeChat.
var handCases = []parseCase{
	// PRODUCT.md §6 examples.
	sc("9", 9), sc("９", 9), sc("9分", 9), sc("九分", 9), sc("十分", 10), sc("满分", 10), sc("给10", 10), sc("0", 0),
	// The brief's examples.
	sc("给个8吧", 8), sc("10分!", 10), sc("10分！", 10), scc("3分，等太久了", 3, "等太久了"),
	// Digits with decoration.
	sc(" 7 ", 7), sc("7。", 7), sc("7!", 7), sc("8分吧", 8), sc("8分啊", 8), sc("就8分", 8), sc("就8吧", 8),
	sc("我给9分", 9), sc("我给9", 9), sc("打9分", 9), sc("打个9分吧", 9), sc("评10分", 10), sc("给个十分", 10),
	sc("给个满分", 10), sc("满分！", 10), sc("满分吧", 10), sc("满分~", 10), sc("满分[强]", 10), sc("满分👍", 10),
	sc("10👍", 10), sc("10[强]", 10), sc("10/10", 10), sc("9/10", 9), sc("9 / 10", 9), sc("8分/10分", 8), sc("8 out of 10", 8),
	sc("１０", 10), sc("１０分", 10), sc("０", 0), sc("５分", 5), sc("６", 6), sc("零", 0), sc("零分", 0), sc("〇", 0),
	sc("一", 1), sc("一分", 1), sc("二", 2), sc("两分", 2), sc("三", 3), sc("三分吧", 3), sc("四分", 4), sc("五", 5), sc("五分吧", 5),
	sc("六分", 6), sc("七", 7), sc("七分", 7), sc("八", 8), sc("八分", 8), sc("九", 9), sc("十", 10), sc("十分吧", 10), sc("十分！", 10),
	sc("给个八吧", 8), sc("打八分", 8), sc("就九分吧", 9), sc("嗯 9", 9), sc("嗯，8分", 8), sc("额 6分", 6), sc("分数是8", 8), sc("评分：9", 9),
	sc("满分10分，我给8分", 8), sc("满分十分我给7分", 7), sc("0到10的话我给9", 9), sc("1-10 给8", 8), sc("满分10分的话 9分", 9),
	// Score plus comment.
	scc("9分，服务很好", 9, "服务很好"), scc("10分 小姐姐态度特别好", 10, "小姐姐态度特别好"), scc("2分，东西到现在还没发", 2, "东西到现在还没发"),
	scc("5分 一般般吧", 5, "一般般吧"), scc("6，回复太慢", 6, "回复太慢"), scc("0分！客服根本不解决问题", 0, "客服根本不解决问题"),
	scc("8 还行", 8, "还行"), scc("4分。排队排了半小时", 4, "排队排了半小时"), scc("七分，价格有点贵", 7, "价格有点贵"),
	scc("满分，谢谢小王", 10, "谢谢小王"), scc("1分 等了30分钟没人理", 1, "等了30分钟没人理"), scc("等了30分钟，给3分", 3, "等了30分钟"),
	scc("给个6分吧，速度太慢了", 6, "速度太慢了"), scc("3分，为什么这么慢", 3, "为什么这么慢"),
	// Score, then a new question: the score counts, the question goes to the bot.
	{in: "9分，请问你们几点关门？", kind: ReplyScore, score: 9, restQ: true},
	{in: "10分 另外发票怎么开", kind: ReplyScore, score: 10, restQ: true},
	// Out of range: never clamped.
	oor("11"), oor("11分"), oor("100"), oor("100分"), oor("十一分"), oor("二十分"), oor("-1"), oor("12分吧"), oor("99"), oor("1000分"),
	// Not an integer score, or two candidates: not forced.
	other("8.5"), other("8.5分"), other("7到8分"), other("8或9"), other("7-8分吧"), other("9、10"), other("嗯"), other("好的"),
	other("谢谢"), other("还行"), other("一般"), other("十分满意"), other("十分感谢"), other("非常满意"), other("不满意"), other("[微笑]"),
	other("👍"), other(""), other("   "), other("。。。"), other("哈哈"), other("ok"), other("收到"), other("不知道"), other("没意见"),
	other("等了两个小时"), other("统一回复"), other("第一次来"),
	// New questions: reopen the conversation.
	q("几点关门？"), q("你们几点开门"), q("3号店几点开门"), q("退货怎么退"), q("我要退款"), q("发票怎么开"), q("转人工"),
	q("人工客服"), q("订单123456怎么还没到"), q("请问会员卡怎么办理"), q("地址在哪里"), q("有没有停车位"), q("能不能改地址"),
	q("快递到哪了"), q("为什么还没发货"), q("怎么联系店长"), q("这个多少钱"), q("可以开发票吗"), q("营业时间"), q("我想投诉"),
	q("我刚买的衣服尺码不对，想换一个大一号的，现在还能换吗"), q("你们那个会员积分可以抵扣现金吗？"), q("what time do you open?"),
	q("明天早上10点能送到吗"), q("5分钟能到吗"), q("2件一起买有优惠吗"),
	// More real replies.
	sc("我觉得7分吧", 7), sc("感觉8分", 8), sc("那就9分吧", 9), sc("8分8分", 8), sc("给满分", 10), scc("零分！垃圾", 0, "垃圾"),
	scc("10 分 谢谢", 10, "谢谢"), scc("我给5分，因为排队太久", 5, "因为排队太久"), sc("应该有8分", 8), sc("10分满分", 10),
	other("一分都不想给"), other("不给分"), other("负分"), other("9.9"), other("五星好评"), other("9，8"), oor("100分满意"),
	// Opt-out.
	opt("退订"), opt("TD"), opt("td"), opt("退订！"), opt("取消订阅"), opt("不要再发了"), opt("别再发了"), opt("STOP"), opt(" 退订 "), opt("ＴＤ"),
}

// generated covers every score in every common spelling.
func generated() []parseCase {
	cn := []string{"零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十"}
	fw := []string{"０", "１", "２", "３", "４", "５", "６", "７", "８", "９", "１０"}
	var out []parseCase
	for v := 0; v <= 10; v++ {
		d := fmt.Sprint(v)
		forms := []string{d, d + "分", d + " 分", d + "分吧", d + "分!", d + "分。", "给" + d, "给" + d + "分", "给个" + d + "吧", "打" + d + "分",
			"我给" + d + "分", "就" + d + "分吧", d + "~", fw[v], fw[v] + "分", fw[v] + "分！", cn[v] + "分", "给个" + cn[v] + "分吧", d + "/10", "我打" + d}
		if v != 10 {
			forms = append(forms, cn[v])
		}
		for _, f := range forms {
			out = append(out, sc(f, v))
		}
		out = append(out, scc(d+"分，服务一般", v, "服务一般"), scc(cn[v]+"分，店员很热情", v, "店员很热情"))
	}
	for _, n := range []string{"11", "12", "15", "20", "50", "99", "100", "101", "110", "1000"} {
		out = append(out, oor(n), oor(n+"分"))
	}
	return out
}

func TestParseReply_Table(t *testing.T) {
	cases := append(append([]parseCase{}, handCases...), generated()...)
	if len(cases) < 300 {
		t.Fatalf("only %d cases; the table is meant to cover a few hundred replies", len(cases))
	}
	for _, c := range cases {
		got := ParseReply(c.in, nil)
		if got.Kind != c.kind {
			t.Errorf("ParseReply(%q).Kind = %s, want %s (got %+v)", c.in, got.Kind, c.kind, got)
			continue
		}
		if c.kind != ReplyScore {
			continue
		}
		if got.Score != c.score {
			t.Errorf("ParseReply(%q).Score = %d, want %d", c.in, got.Score, c.score)
		}
		if got.Comment != c.comment && !(c.comment == "" && got.RestIsQuestion) {
			t.Errorf("ParseReply(%q).Comment = %q, want %q", c.in, got.Comment, c.comment)
		}
		if got.RestIsQuestion != c.restQ {
			t.Errorf("ParseReply(%q).RestIsQuestion = %v, want %v", c.in, got.RestIsQuestion, c.restQ)
		}
	}
	t.Logf("%d replies parsed", len(cases))
}

func TestParseReply_CustomOptOutWords(t *testing.T) {
	if got := ParseReply("不要问卷", []string{"不要问卷"}); got.Kind != ReplyOptOut {
		t.Fatalf("custom opt-out word: %+v", got)
	}
	if got := ParseReply("退订", []string{"不要问卷"}); got.Kind == ReplyOptOut {
		t.Fatalf("default word used although the brand configured its own: %+v", got)
	}
}

func FuzzParseReply(f *testing.F) {
	for _, c := range handCases {
		f.Add(c.in)
	}
	f.Add("\xff\xfe9分")
	f.Fuzz(func(t *testing.T, s string) {
		p := ParseReply(s, nil)
		switch p.Kind {
		case ReplyScore:
			if p.Score < 0 || p.Score > 10 {
				t.Fatalf("ParseReply(%q) score %d outside 0–10", s, p.Score)
			}
		default:
			if p.Score != 0 || p.Comment != "" {
				t.Fatalf("ParseReply(%q) = %+v: a non-score carries a score or comment", s, p)
			}
		}
		if !utf8.ValidString(p.Comment) {
			t.Fatalf("comment %q is not valid UTF-8", p.Comment)
		}
		if len(p.Comment) > len(s)*3+8 {
			t.Fatalf("comment longer than the input: %q from %q", p.Comment, s)
		}
		// A score is stable under surrounding whitespace.
		if p.Kind == ReplyScore && !strings.ContainsAny(s, "\x00") {
			if q := ParseReply("  "+s+"  ", nil); q.Kind != ReplyScore || q.Score != p.Score {
				t.Fatalf("ParseReply(%q) = %+v but padded = %+v", s, p, q)
			}
		}
	})
}

func BenchmarkParseReply(b *testing.B) {
	inputs := []string{"9", "3分，等太久了", "给个8吧", "你们几点关门？", "满分10分，我给8分", "好的"}
	for i := 0; b.Loop(); i++ {
		ParseReply(inputs[i%len(inputs)], nil)
	}
}

// The cheap filter in front of ParseReply never hides an opt-out that
// ParseReply would recognise in these spellings.
func TestMentionsAny_OptOutSpellings(t *testing.T) {
	words := DefaultConfig().OptOutWords
	for _, s := range []string{"退订", "ＴＤ", "TD", "td", "退订！", " 退订 ", "STOP", "不要再发了"} {
		if ParseReply(s, words).Kind == ReplyOptOut && !mentionsAny(s, words) {
			t.Errorf("%q is an opt-out but the filter drops it", s)
		}
	}
	if mentionsAny("营业时间是几点", words) {
		t.Error("an ordinary question passes the opt-out filter")
	}
}

// widthFoldable may skip the fold only for text the fold leaves as it is:
// checked for every code point.
func TestWidthFoldableCoversEveryFoldedRune(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates are not runes of valid UTF-8
		}
		s := string(r)
		if !widthFoldable(s) && width.Fold.String(s) != s {
			t.Fatalf("U+%04X: width.Fold changes it but widthFoldable says no", r)
		}
	}
}
