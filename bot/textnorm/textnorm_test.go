package textnorm

import (
	"slices"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestNormalizer_Normalize(t *testing.T) {
	n := New(Options{Typos: map[string]string{"积份": "积分"}})
	n.Learn([]string{"微粒贷怎么还款", "微粒贷额度是多少", "微粒贷的额度怎么提高", "验证码收不到", "收不到验证码怎么办", "酒吧在哪"})
	cases := []struct{ name, in, want string }{
		{"full width", "ＡＢＣ１２３？", "abc0"},
		{"case", "VIP会员", "vip会员"},
		{"traditional", "會員積分怎麼兌換", "会员积分怎么兑换"},
		{"slash emoji code", "/流泪我想要微粒代", "我想要微粒贷"},
		{"bracket emoji code", "[微笑]退货[撇嘴]流程", "退货流程"},
		{"unicode emoji", "退款😭😭多久", "退款多久"},
		{"fillers", "你好，请问微粒贷怎么还款呢？", "微粒贷怎么还款"},
		{"filler kept inside KB word", "额度是多少", "额度是多少"},
		{"repeated punctuation", "怎么还款？？？！！！", "怎么还款"},
		{"clause punctuation joins clauses", "我借了钱,怎么还", "我借了钱怎么还"},
		{"colloquial", "咋还款", "怎么还款"},
		{"digits collapse", "借2000一天多少利息", "借0一天多少利息"},
		{"configured typo", "积份怎么用", "积分怎么用"},
		{"homophone towards KB word", "验证吗收不到", "验证码收不到"},
		{"homophone left alone when no KB word", "可以吗", "可以"},
		{"slash not an emoji", "1/2的利息", "0的利息"},
		{"empty", "", ""},
		{"only noise", "？？？[微笑]", ""},
	}
	for _, c := range cases {
		if got := n.Normalize(c.in); got != c.want {
			t.Errorf("%s: Normalize(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestFold(t *testing.T) {
	cases := map[string]string{"ＨＥＬＬＯ": "hello", "臺灣": "台湾", "　": " ", "退貨": "退货"}
	for in, want := range cases {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	n := New(Options{})
	n.Learn([]string{"微粒贷怎么还款", "验证码收不到"})
	for _, s := range []string{"", "/流泪", "[微笑", "]][[", "請問？？", "\xff\xfe", "/", "1/2", "😭😭", "額度"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := n.Normalize(s)
		if !utf8.ValidString(out) && utf8.ValidString(s) {
			t.Fatalf("Normalize(%q) produced invalid UTF-8 %q", s, out)
		}
		// Normalising is idempotent: matching must not depend on whether
		// text was normalised once or twice (KB text and queries both are).
		if again := n.Normalize(out); again != out && utf8.ValidString(s) {
			t.Fatalf("not idempotent: %q → %q → %q", s, out, again)
		}
	})
}

// TestNew_LeavesDefaultsAlone: New sorts its filler list longest first; it
// must sort a copy, not DefaultFillers itself (which several goroutines
// building bots at once would then sort concurrently — a data race that
// `go test -race` reports here).
func TestNew_LeavesDefaultsAlone(t *testing.T) {
	before := slices.Clone(DefaultFillers)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			New(Options{})
		}()
	}
	wg.Wait()
	if !slices.Equal(before, DefaultFillers) {
		t.Fatalf("New reordered DefaultFillers:\nbefore %q\nafter  %q", before, DefaultFillers)
	}
}
