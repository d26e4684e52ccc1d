package bot

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"
	"testing"
	"time"

	"kefu/bot/index"
	"kefu/bot/kb"
	"kefu/conv"
)

// Retrieval must not change by a single bit when its code is made faster:
// these digests cover the normalised text, ranking, scores (exact float
// bits) and decision of every question of the sample KB and of every
// question and query of the evaluation sets (read in place, never copied).
// A change that is meant to alter retrieval updates them on purpose.
const (
	pinSampleDigest = "aaf508db86e9352a55fdab92e01a5f8f4b9374f47db8542b88e5a5eef7207111"
	pinEvalDigest   = "1e0556aa5f71934d5acaa722b260578173ad07b526dc0c96c36dbc70a82b9c40"
)

func pinSearch(t *testing.T, h hash.Hash, b *Bot, f index.Filter, texts []string) {
	t.Helper()
	r := b.cur.Load()
	var buf [8]byte
	for _, text := range texts {
		cands, norm, err := r.search(context.Background(), text, f, max(5, b.cfg.ClarifyOptions))
		if err != nil {
			t.Fatal(err)
		}
		act, opts, reason := Decide(b.cfg.Thresholds, cands, b.cfg.ClarifyOptions)
		h.Write([]byte(text + "\x00" + norm + "\x00" + string(act) + "\x00" + reason + "\x00"))
		for _, c := range cands {
			binary.LittleEndian.PutUint64(buf[:], math.Float64bits(c.Score))
			h.Write([]byte(c.EntryID + "\x00" + c.Question + "\x00"))
			h.Write(buf[:])
		}
		binary.LittleEndian.PutUint64(buf[:], uint64(len(opts)))
		h.Write(buf[:])
	}
}

func checkPin(t *testing.T, name, got, want string) {
	t.Helper()
	if want == "" {
		t.Errorf("%s digest not pinned yet: %s", name, got)
		return
	}
	if got != want {
		t.Errorf("%s digest %s, pinned %s: retrieval results changed", name, got, want)
	}
}

func TestRetriever_SampleResultsPinned(t *testing.T) {
	b := newSampleBot(t, nil)
	entries, err := kb.ReadFile(samplePath(t), kb.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"", "你好", "[微笑]", "？？？", "火星天气", "咋退货啊亲", "我要退貨", "ＶＩＰ会员怎么办", "借2000元多久到账", "/流泪 退款"}
	for i := range entries {
		texts = append(texts, entries[i].Questions()...)
	}
	h := sha256.New()
	f := b.customerFilter("")
	f.Now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pinSearch(t, h, b, f, texts)
	checkPin(t, "sample", hex.EncodeToString(h.Sum(nil)), pinSampleDigest)
}

func TestRetriever_EvalResultsPinned(t *testing.T) {
	qs, queries := evalTexts(t)
	entries, _ := syntheticKB(t, len(qs)+500)
	b, err := NewWithEntries(DefaultConfig(), entries, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := sha256.New()
	for _, store := range []string{"", "store-3"} {
		f := b.customerFilter(conv.StoreID(store))
		f.Now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		pinSearch(t, h, b, f, queries)
		if store == "" {
			pinSearch(t, h, b, f, qs)
		}
	}
	checkPin(t, "eval", hex.EncodeToString(h.Sum(nil)), pinEvalDigest)
}
