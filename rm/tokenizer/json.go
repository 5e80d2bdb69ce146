package tokenizer

import "encoding/json"

// The subset of tokenizer.json that Steergate reads.
type fileJSON struct {
	AddedTokens   []addedJSON      `json:"added_tokens"`
	Normalizer    *componentJSON   `json:"normalizer"`
	PreTokenizer  *componentJSON   `json:"pre_tokenizer"`
	PostProcessor *componentJSON   `json:"post_processor"`
	Decoder       *componentJSON   `json:"decoder"`
	Model         modelJSON        `json:"model"`
	Truncation    *json.RawMessage `json:"truncation"`
}

type addedJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	Special    bool   `json:"special"`
	Normalized bool   `json:"normalized"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
}

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// componentJSON is any normalizer, pre-tokenizer, post-processor or decoder.
type componentJSON struct {
	Type string `json:"type"`
	// Sequence
	Normalizers   []componentJSON `json:"normalizers"`
	Pretokenizers []componentJSON `json:"pretokenizers"`
	Decoders      []componentJSON `json:"decoders"`
	Processors    []componentJSON `json:"processors"`
	// Replace, Split
	Pattern  *patternJSON `json:"pattern"`
	Content  string       `json:"content"`
	Behavior string       `json:"behavior"`
	Invert   bool         `json:"invert"`
	// Prepend
	Prepend string `json:"prepend"`
	// ByteLevel
	AddPrefixSpace bool  `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Metaspace
	Replacement   string `json:"replacement"`
	PrependScheme string `json:"prepend_scheme"`
	Split         *bool  `json:"split"`
	// BertNormalizer
	CleanText          *bool `json:"clean_text"`
	HandleChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents       *bool `json:"strip_accents"`
	Lowercase          *bool `json:"lowercase"`
	// Strip
	Left  bool `json:"left"`
	Right bool `json:"right"`
	Start int  `json:"start"`
	Stop  int  `json:"stop"`
	// WordPiece decoder
	Prefix  string `json:"prefix"`
	Cleanup *bool  `json:"cleanup"`
	// Digits
	IndividualDigits bool `json:"individual_digits"`
	// TemplateProcessing / BertProcessing / RobertaProcessing
	Single        []templateItem           `json:"single"`
	Pair          []templateItem           `json:"pair"`
	SpecialTokens map[string]specialTokens `json:"special_tokens"`
	Sep           []any                    `json:"sep"`
	Cls           []any                    `json:"cls"`
}

type templateItem struct {
	SpecialToken *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"Sequence"`
}

type specialTokens struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	MaxInputCharsPerWord    int             `json:"max_input_chars_per_word"`
}
