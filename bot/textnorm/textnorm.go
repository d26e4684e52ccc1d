// Package textnorm normalises real WeChat customer text before it is matched
// against the knowledge base: full/half width, traditional→simplified, case,
// WeChat emoji codes, emoji, filler words, repeated punctuation and typos of
// the knowledge base's own vocabulary.
//
// The same Normalizer must be used for indexing and querying: every rewrite
// is applied to both sides so that they meet in the middle.
package textnorm

import (
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// t2s maps traditional to simplified characters (built from t2sPairs).
var t2s = func() map[rune]rune {
	m := make(map[rune]rune, len(t2sPairs)/3)
	rs := []rune(t2sPairs)
	for i := 0; i+1 < len(rs); i += 2 {
		if rs[i] != rs[i+1] {
			m[rs[i]] = rs[i+1]
		}
	}
	return m
}()

// WeChatEmojiCodes are the textual emoji codes the WeChat client inserts,
// both the "/流泪" form (old clients, OA messages) and the "[微笑]" form.
// Listing them lets the normaliser drop them without eating real words that
// follow a slash.
var WeChatEmojiCodes = []string{
	"微笑", "撇嘴", "色", "发呆", "得意", "流泪", "害羞", "闭嘴", "睡", "大哭", "尴尬", "发怒",
	"调皮", "呲牙", "惊讶", "难过", "酷", "冷汗", "抓狂", "吐", "偷笑", "可爱", "愉快", "白眼",
	"傲慢", "饥饿", "困", "惊恐", "流汗", "憨笑", "大兵", "悠闲", "奋斗", "咒骂", "疑问", "嘘",
	"晕", "折磨", "衰", "骷髅", "敲打", "再见", "擦汗", "抠鼻", "鼓掌", "糗大了", "坏笑", "左哼哼",
	"右哼哼", "哈欠", "鄙视", "委屈", "快哭了", "阴险", "亲亲", "吓", "可怜", "菜刀", "西瓜", "啤酒",
	"篮球", "乒乓", "咖啡", "饭", "猪头", "玫瑰", "凋谢", "示爱", "爱心", "心碎", "蛋糕", "闪电",
	"炸弹", "刀", "足球", "瓢虫", "便便", "月亮", "太阳", "礼物", "拥抱", "强", "弱", "握手",
	"胜利", "抱拳", "勾引", "拳头", "差劲", "爱你", "NO", "OK", "爱情", "飞吻", "跳跳", "发抖",
	"怄火", "转圈", "磕头", "回头", "跳绳", "挥手", "激动", "街舞", "献吻", "左太极", "右太极",
	"嘿哈", "捂脸", "奸笑", "机智", "皱眉", "耶", "吃瓜", "加油", "汗", "天啊", "社会社会", "旺柴",
	"好的", "打脸", "哇", "翻白眼", "666", "让我看看", "叹气", "苦涩", "裂开", "破涕为笑", "囧",
	"生病", "脸红", "笑脸", "恐惧", "失望", "无语", "红包", "發", "福", "烟花", "爆竹", "庆祝",
	"合十", "Emm", "Yeah", "哼", "悠闲", "难受",
}

// slashCodes is WeChatEmojiCodes sorted longest first so "/快哭了" wins over "/哭".
var slashCodes = func() []string {
	s := append([]string(nil), WeChatEmojiCodes...)
	sort.Slice(s, func(i, j int) bool { return utf8.RuneCountInString(s[i]) > utf8.RuneCountInString(s[j]) })
	return s
}()

// DefaultFillers are words that carry politeness or tone, not intent. They
// are removed as whole tokens; longer ones first.
var DefaultFillers = []string{
	"请问一下", "请问下", "请问", "问一下", "问下", "你好", "您好", "在吗", "在不在", "亲爱的", "亲",
	"麻烦", "谢谢", "多谢", "感谢", "哈哈", "呵呵", "嗯嗯", "好的",
	"吗", "呢", "吧", "啊", "呀", "哦", "噢", "嘛", "哈", "额", "呃", "嗯", "哎", "唉", "啦", "你",
}

// DefaultTypos fixes common misspellings that are not single-character
// homophones (those are handled by Homophones against the KB vocabulary).
var DefaultTypos = map[string]string{
	"微粒代": "微粒贷", "徽粒贷": "微粒贷", "微立贷": "微粒贷", "微利贷": "微粒贷", "徽粒货": "微粒贷",
	"威粒贷": "微粒贷", "微粒货": "微粒贷", "优惠卷": "优惠券", "花被": "花呗", "借被": "借呗",
	"支附宝": "支付宝", "微性": "微信", "二唯码": "二维码", "兑奂": "兑换",
}

// DefaultCanon rewrites colloquial and variant phrasings of function words
// to one canonical form, so "咋还款" and "如何还款" meet "怎么还款". These
// are general Chinese equivalences, not tied to any knowledge base.
var DefaultCanon = map[string]string{
	"咋样": "怎么", "咋办": "怎么办", "咋": "怎么", "怎样": "怎么", "如何": "怎么", "怎么样": "怎么",
	"怎么着": "怎么", "为啥": "为什么", "为何": "为什么", "干嘛": "为什么", "干什么": "为什么",
	"啥时候": "什么时候", "何时": "什么时候", "几时": "什么时候", "多会": "什么时候", "啥": "什么",
	"多长时间": "多久", "多少时间": "多久", "多少天": "多久", "能不能": "能", "可不可以": "可以",
	"能否": "能", "可否": "可以", "是不是": "是", "有没有": "有", "木有": "没有", "没得": "没有",
	"咱们": "我们", "俺": "我", "偶": "我", "您": "你", "你们": "你",
	"么样": "么", "哪里": "哪", "哪儿": "哪", "那里": "哪",
}

// Homophones are groups of characters that Chinese pinyin input methods
// commonly confuse. A character of a group is only replaced by another member
// when that turns an unknown n-gram into one of the knowledge base's own
// words (see Normalizer.Learn): corrections never invent vocabulary.
var Homophones = []string{
	"贷代带待袋", "账帐", "还环", "额鹅", "款宽", "借接介", "钱前", "利力立例", "息西洗",
	"度渡", "申深身", "请清情", "码马", "银因", "卡咖", "号好", "绑帮", "定订", "已以",
	"再在", "的得地", "么没", "吗码", "那哪", "做作坐", "验眼", "证正", "信心", "用拥",
	"户护", "扣口", "期其起", "限线现", "审神", "核和合", "批皮", "通同", "提题", "费废",
	"货贷", "券卷", "积机", "分份", "退腿", "换唤", "售收受", "票漂", "营赢", "配陪",
	"送松", "店点", "址只", "优忧", "惠会汇", "付副复", "支知", "微威维", "粒立", "贝呗被",
}

// CorrectBigrams lets 2-gram context drive homophone correction
// (experiments only).
var CorrectBigrams = false

// Normalizer rewrites text. A zero Normalizer applies every built-in rule
// except vocabulary-driven typo correction; call Learn to enable it.
// A Normalizer is safe for concurrent use once built.
type Normalizer struct {
	fillers []string
	typos   *strings.Replacer
	canon   *strings.Replacer
	// vocab holds the 2- and 3-rune n-grams of the knowledge base with their
	// counts; homo maps a rune to the other members of its homophone group.
	// Keys are gramKey's: the lookups run for every rune of every message,
	// and packing the runes costs less than building a string each time.
	vocab map[uint64]int
	homo  map[rune][]rune
}

// Options configures a Normalizer.
type Options struct {
	// Fillers overrides DefaultFillers when non-nil.
	Fillers []string
	// Typos is merged over DefaultTypos.
	Typos map[string]string
	// Canon overrides DefaultCanon when non-nil.
	Canon map[string]string
}

// New builds a Normalizer.
func New(opt Options) *Normalizer {
	fillers := DefaultFillers
	if opt.Fillers != nil {
		fillers = opt.Fillers
	}
	// A copy: sorting DefaultFillers in place would change the exported
	// list and race with every other New.
	n := &Normalizer{fillers: slices.Clone(fillers)}
	sort.SliceStable(n.fillers, func(i, j int) bool {
		return utf8.RuneCountInString(n.fillers[i]) > utf8.RuneCountInString(n.fillers[j])
	})
	typos := map[string]string{}
	for k, v := range DefaultTypos {
		typos[k] = v
	}
	for k, v := range opt.Typos {
		typos[Fold(k)] = Fold(v)
	}
	keys := make([]string, 0, len(typos))
	for k := range typos {
		if k != "" {
			keys = append(keys, k)
		}
	}
	// Longest first, so "徽粒货" is not pre-empted by a shorter overlapping key.
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) > len(keys[j])
		}
		return keys[i] < keys[j]
	})
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, typos[k])
	}
	n.typos = strings.NewReplacer(args...)
	canon := DefaultCanon
	if opt.Canon != nil {
		canon = opt.Canon
	}
	n.canon = replacer(canon)
	return n
}

// replacer builds a strings.Replacer trying longer keys first.
func replacer(m map[string]string) *strings.Replacer {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) > len(keys[j])
		}
		return keys[i] < keys[j]
	})
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, Fold(k), Fold(m[k]))
	}
	return strings.NewReplacer(args...)
}

// Learn records the vocabulary of the knowledge base (its questions) so that
// Normalize can correct homophone typos towards it. It must be called before
// the Normalizer is shared.
func (n *Normalizer) Learn(texts []string) {
	n.vocab = make(map[uint64]int)
	n.homo = make(map[rune][]rune)
	for _, g := range Homophones {
		rs := []rune(g)
		for _, r := range rs {
			for _, o := range rs {
				if o != r {
					n.homo[r] = append(n.homo[r], o)
				}
			}
		}
	}
	for _, t := range texts {
		rs := []rune(n.clean(t))
		for k := 2; k <= 3; k++ {
			for i := 0; i+k <= len(rs); i++ {
				n.vocab[gramKey(rs[i:i+k])]++
			}
		}
	}
}

// Normalize returns the canonical form of s used for matching.
func (n *Normalizer) Normalize(s string) string {
	s = n.clean(s)
	if n.vocab != nil {
		s = n.correct(s)
	}
	// Dropping a filler can join two digit runs ("00额00": 额 is a
	// hesitation), so they are collapsed again: normalising twice must give
	// what normalising once gave (FuzzNormalize).
	return collapseDigits(n.dropFillers(s))
}

// Fold applies the character-level rules only: width, case,
// traditional→simplified. It is what keys of typo tables go through.
func Fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func foldRune(r rune) rune {
	switch {
	case r == 0x3000:
		return ' '
	case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII block
		r -= 0xFEE0
	}
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	if s, ok := t2s[r]; ok {
		return s
	}
	return unicode.ToLower(r)
}

// clean applies every rule that does not depend on the knowledge base except
// filler removal: folding, emoji codes, emoji, punctuation, typos table.
func (n *Normalizer) clean(s string) string {
	s = Fold(s)
	s = stripEmojiCodes(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case isEmoji(r):
			continue
		case unicode.IsPunct(r) || unicode.IsSpace(r) || unicode.IsSymbol(r) || unicode.IsControl(r):
			// Punctuation and spaces carry no intent and are dropped. Joining
			// the clauses (rather than splitting n-grams at them) was better on
			// the dev half of all three evaluation sets: customers punctuate
			// at random ("微粒贷,怎么还" / "微粒贷怎么还").
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if n != nil && n.typos != nil {
		out = n.typos.Replace(out)
	}
	if n != nil && n.canon != nil {
		out = n.canon.Replace(out)
	}
	return collapseDigits(out)
}

// collapseDigits replaces every run of ASCII digits by one "0": amounts,
// dates and order numbers vary between paraphrases ("借2000" / "借4000")
// while the question stays the same.
func collapseDigits(s string) string {
	i := strings.IndexAny(s, "0123456789")
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	prevDigit := false
	for _, r := range s[i:] {
		d := r >= '0' && r <= '9'
		if d && prevDigit {
			continue
		}
		if d {
			r = '0'
		}
		prevDigit = d
		b.WriteRune(r)
	}
	return b.String()
}

// stripEmojiCodes removes "[微笑]" and "/微笑" codes.
func stripEmojiCodes(s string) string {
	if !strings.ContainsAny(s, "[/") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == '[' {
			if j := strings.IndexByte(s[i+1:], ']'); j >= 0 && j <= 18 {
				if isCode(s[i+1 : i+1+j]) {
					i += j + 2
					continue
				}
			}
		}
		if c == '/' {
			matched := false
			for _, code := range slashCodes {
				if strings.HasPrefix(s[i+1:], code) {
					i += 1 + len(code)
					matched = true
					break
				}
			}
			if matched {
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func isCode(s string) bool {
	for _, c := range WeChatEmojiCodes {
		if strings.EqualFold(c, s) {
			return true
		}
	}
	return false
}

func isEmoji(r rune) bool {
	switch {
	case r >= 0x1F000 && r <= 0x1FAFF, // emoticons, pictographs, transport, …
		r >= 0x2600 && r <= 0x27BF, // misc symbols, dingbats
		r >= 0xFE00 && r <= 0xFE0F, // variation selectors
		r == 0x200D,                // zero-width joiner
		r >= 0x1F1E6 && r <= 0x1F1FF:
		return true
	}
	return false
}

// correct replaces a homophone character when the n-grams around it are not
// in the KB vocabulary and the replacement makes one of them a known word.
func (n *Normalizer) correct(s string) string {
	rs := []rune(s)
	changed := false
	for i, r := range rs {
		alts := n.homo[r]
		if len(alts) == 0 {
			continue
		}
		cur := n.contextScore(rs, i)
		best, bestScore := r, cur
		for _, a := range alts {
			rs[i] = a
			if sc := n.contextScore(rs, i); sc > bestScore {
				best, bestScore = a, sc
			}
		}
		rs[i] = r
		// Require the original to be unseen and the fix to be seen at least
		// twice, so rare KB words do not pull correct text towards them.
		if best != r && cur == 0 && bestScore >= 2 {
			rs[i] = best
			changed = true
		}
	}
	if !changed {
		return s
	}
	return string(rs)
}

// contextScore counts KB occurrences of the 3-grams (or, with
// CorrectBigrams, failing that the 2-grams) covering position i. Bigram
// context alone proved too weak: it "corrects" ordinary words towards
// frequent KB bigrams.
func (n *Normalizer) contextScore(rs []rune, i int) int {
	score := 0
	lo := 3
	if CorrectBigrams {
		lo = 2
	}
	for k := 3; k >= lo; k-- {
		for st := i - k + 1; st <= i; st++ {
			if st < 0 || st+k > len(rs) {
				continue
			}
			if hasSpace(rs[st : st+k]) {
				continue
			}
			score += n.vocab[gramKey(rs[st:st+k])]
		}
		if score > 0 {
			return score
		}
	}
	return score
}

// gramKey packs a 2- or 3-rune n-gram into one integer, 21 bits a rune
// (Unicode needs 21); a 2-gram also sets the top bit, so that no 2-gram
// and 3-gram share a key. Equal keys are equal n-grams.
func gramKey(rs []rune) uint64 {
	if len(rs) == 2 {
		return 1<<63 | uint64(rs[0])<<21 | uint64(rs[1])
	}
	return uint64(rs[0])<<42 | uint64(rs[1])<<21 | uint64(rs[2])
}

// vocabCount is the KB count of the n-gram s (0 unless it has 2 or 3 runes,
// the only lengths Learn records).
func (n *Normalizer) vocabCount(s string) int {
	var buf [4]rune
	rs := buf[:0]
	for _, r := range s {
		if len(rs) == 3 {
			return 0
		}
		rs = append(rs, r)
	}
	if len(rs) < 2 {
		return 0
	}
	return n.vocab[gramKey(rs)]
}

func hasSpace(rs []rune) bool {
	for _, r := range rs {
		if r == ' ' {
			return true
		}
	}
	return false
}

func (n *Normalizer) dropFillers(s string) string {
	fillers := DefaultFillers
	if n != nil && n.fillers != nil {
		fillers = n.fillers
	}
	for _, f := range fillers {
		if !strings.Contains(s, f) {
			continue
		}
		// Keep a filler that is part of a KB word (e.g. "吧" in "酒吧", "额"
		// in "额度"): only drop it where the KB never has it in that context.
		var b strings.Builder
		for {
			j := strings.Index(s, f)
			if j < 0 {
				b.WriteString(s)
				break
			}
			if n.protected(s, j, len(f)) {
				b.WriteString(s[:j+len(f)])
			} else {
				b.WriteString(s[:j])
			}
			s = s[j+len(f):]
		}
		s = b.String()
	}
	return strings.TrimSpace(s)
}

// protected reports whether the filler at s[j:j+l] forms a KB bigram with
// the rune before or after it. Without a learnt vocabulary, single-rune
// fillers followed by a letter (额度) are kept by a small built-in list.
func (n *Normalizer) protected(s string, j, l int) bool {
	before, _ := utf8.DecodeLastRuneInString(s[:j])
	after, _ := utf8.DecodeRuneInString(s[j+l:])
	f := s[j : j+l]
	if n != nil && n.vocab != nil {
		if before != utf8.RuneError && before != ' ' && n.vocabCount(string(before)+f) >= 2 {
			return true
		}
		if after != utf8.RuneError && after != ' ' && n.vocabCount(f+string(after)) >= 2 {
			return true
		}
		return false
	}
	if w, ok := builtinKeep[f]; ok {
		return strings.ContainsRune(w, after) || strings.ContainsRune(w, before)
	}
	return false
}

// builtinKeep lists, per single-rune filler, neighbours that make it a word.
var builtinKeep = map[string]string{
	"额": "度外",
	"吧": "酒网",
	"哈": "密尔",
	"啊": "",
	"呢": "毛子",
	"嘛": "喇",
	"亲": "子属人戚",
}
