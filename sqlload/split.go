package sqlload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// errTooLong is returned by the splitter when one statement exceeds the
// configured maximum.
var errTooLong = errors.New("statement too long")

// lexical states of the splitter.
const (
	lexNormal       = iota
	lexSingle       // inside '...'
	lexDouble       // inside "..."
	lexBacktick     // inside `...`
	lexBracket      // inside [...]
	lexLineComment  // after --, to end of line
	lexBlockComment // inside /* ... */
)

// completeness states, after SQLite's sqlite3_complete: a statement is
// complete at a semicolon, except that CREATE [TEMP] TRIGGER only ends at
// a semicolon that follows "; END" (whitespace and comments allowed).
const (
	cStart   = iota // between statements
	cNormal         // inside an ordinary statement
	cExplain        // after a leading EXPLAIN
	cCreate         // after a leading CREATE (and TEMP)
	cTrigger        // inside a trigger body
	cSemi           // trigger body: after a ';'
	cEnd            // trigger body: after '; END'
)

// token kinds fed into the completeness machine.
const (
	tkSemi = iota
	tkWS
	tkOther
	tkExplain
	tkCreate
	tkTemp
	tkTrigger
	tkEnd
)

// transitions[state][token] is the next completeness state.
var transitions = [...][8]int{
	//           semi    ws        other    explain   create   temp     trigger   end
	cStart:   {cStart, cStart, cNormal, cExplain, cCreate, cNormal, cNormal, cNormal},
	cNormal:  {cStart, cNormal, cNormal, cNormal, cNormal, cNormal, cNormal, cNormal},
	cExplain: {cStart, cExplain, cNormal, cNormal, cCreate, cNormal, cNormal, cNormal},
	cCreate:  {cStart, cCreate, cNormal, cNormal, cNormal, cCreate, cTrigger, cNormal},
	cTrigger: {cSemi, cTrigger, cTrigger, cTrigger, cTrigger, cTrigger, cTrigger, cTrigger},
	cSemi:    {cSemi, cSemi, cTrigger, cTrigger, cTrigger, cTrigger, cTrigger, cEnd},
	cEnd:     {cStart, cEnd, cTrigger, cTrigger, cTrigger, cTrigger, cTrigger, cTrigger},
}

// splitter reads SQL text and returns it one complete statement at a
// time, holding only the current statement in memory.
type splitter struct {
	r     *bufio.Reader
	max   int
	n     int64  // bytes consumed from r
	buf   []byte // the statement being read
	lex   int
	state int
	word  []byte // identifier being read (for keyword detection)
	// first is the first word of the current statement, upper-cased,
	// so that the loader can recognise BEGIN, COMMIT and friends.
	first string
	// sawToken is set once the statement has a token that is neither
	// whitespace nor a comment.
	sawToken bool
	// commentLen counts the bytes inside a block comment, so that the
	// '*' of the opening "/*" cannot also close it ("/*/").
	commentLen int
}

func newSplitter(r io.Reader, max int) *splitter {
	return &splitter{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next complete statement (with its trailing ';'), and
// its first keyword upper-cased. Statements that hold only whitespace,
// comments and semicolons are skipped. At the end of the input it
// returns io.EOF, or an error if an incomplete statement remains.
func (s *splitter) next() (stmt []byte, first string, err error) {
	s.buf = s.buf[:0]
	s.first = ""
	s.sawToken = false
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			s.endWord()
			if s.sawToken {
				return nil, "", fmt.Errorf("incomplete SQL at end of input (truncated dump?): %.80q", s.buf)
			}
			return nil, "", io.EOF
		}
		if err != nil {
			return nil, "", err
		}
		s.n++
		if len(s.buf) >= s.max {
			return nil, "", fmt.Errorf("%w: over %d bytes", errTooLong, s.max)
		}
		s.buf = append(s.buf, c)
		if s.step(c) {
			if !s.sawToken {
				// Only whitespace, comments and semicolons: skip.
				s.buf = s.buf[:0]
				continue
			}
			return s.buf, s.first, nil
		}
	}
}

// step consumes one byte and reports whether it completed a statement.
func (s *splitter) step(c byte) bool {
	switch s.lex {
	case lexSingle:
		if c == '\'' {
			s.lex = lexNormal
		}
		return false
	case lexDouble:
		if c == '"' {
			s.lex = lexNormal
		}
		return false
	case lexBacktick:
		if c == '`' {
			s.lex = lexNormal
		}
		return false
	case lexBracket:
		if c == ']' {
			s.lex = lexNormal
		}
		return false
	case lexLineComment:
		if c == '\n' {
			s.lex = lexNormal
		}
		return false
	case lexBlockComment:
		if c == '/' && len(s.buf) >= 2 && s.buf[len(s.buf)-2] == '*' && s.commentLen >= 2 {
			s.lex = lexNormal
		}
		s.commentLen++
		return false
	}

	if isIdent(c) {
		s.word = append(s.word, c)
		return false
	}
	s.endWord()
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		s.feed(tkWS)
		return false
	case '\'':
		s.lex = lexSingle
		s.token(tkOther)
		return false
	case '"':
		s.lex = lexDouble
		s.token(tkOther)
		return false
	case '`':
		s.lex = lexBacktick
		s.token(tkOther)
		return false
	case '[':
		s.lex = lexBracket
		s.token(tkOther)
		return false
	case '-':
		if s.peek() == '-' {
			s.lex = lexLineComment
			s.feed(tkWS)
			return false
		}
	case '/':
		if s.peek() == '*' {
			s.lex = lexBlockComment
			s.commentLen = 0
			s.feed(tkWS)
			return false
		}
	case ';':
		s.feed(tkSemi)
		return s.state == cStart
	}
	s.token(tkOther)
	return false
}

// peek returns the next byte without consuming it, or 0.
func (s *splitter) peek() byte {
	b, err := s.r.Peek(1)
	if err != nil || len(b) == 0 {
		return 0
	}
	return b[0]
}

// endWord classifies and feeds the identifier just read, if any.
func (s *splitter) endWord() {
	if len(s.word) == 0 {
		return
	}
	w := s.word
	s.word = s.word[:0]
	tk := tkOther
	switch {
	case eqFold(w, "EXPLAIN"):
		tk = tkExplain
	case eqFold(w, "CREATE"):
		tk = tkCreate
	case eqFold(w, "TEMP"), eqFold(w, "TEMPORARY"):
		tk = tkTemp
	case eqFold(w, "TRIGGER"):
		tk = tkTrigger
	case eqFold(w, "END"):
		tk = tkEnd
	}
	if !s.sawToken {
		s.first = upper(w)
	}
	s.token(tk)
}

// token feeds a non-whitespace token.
func (s *splitter) token(tk int) {
	s.sawToken = true
	s.feed(tk)
}

func (s *splitter) feed(tk int) {
	s.state = transitions[s.state][tk]
}

func isIdent(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func eqFold(w []byte, kw string) bool {
	if len(w) != len(kw) {
		return false
	}
	for i := range w {
		c := w[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != kw[i] {
			return false
		}
	}
	return true
}

func upper(w []byte) string {
	b := make([]byte, len(w))
	for i, c := range w {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	return string(b)
}
