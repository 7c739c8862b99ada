package sqlload

import (
	"bytes"
	"fmt"
	"io"
)

// lexical states of the splitter.
const (
	lexNormal       = iota
	lexSingle       // inside '...'
	lexDouble       // inside "..."
	lexBacktick     // inside `...`
	lexBracket      // inside [...]
	lexLineComment  // after --, to end of line
	lexBlockComment // inside /* ... */
	lexBlockStar    // inside a block comment, after a '*'
	lexDash         // after a '-': a comment if another follows
	lexSlash        // after a '/': a comment if a '*' follows
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
// time, holding only the current statement in memory. It scans whole
// read buffers: string literals, comments and the body of an ordinary
// statement are skipped with byte searches, and keywords are only
// looked at while they can change the completeness state.
type splitter struct {
	r     io.Reader
	rbuf  []byte // read buffer
	chunk []byte // unread part of rbuf
	rerr  error  // error from the last Read, reported once chunk is used
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
}

// bigStatement is the size past which the splitter does not keep a
// statement's buffer for the next one.
const bigStatement = 4 << 20

func newSplitter(r io.Reader, max int) *splitter {
	return &splitter{r: r, rbuf: make([]byte, 64<<10), max: max}
}

// next returns the next complete statement (with its trailing ';'), and
// its first keyword upper-cased. Statements that hold only whitespace,
// comments and semicolons are skipped. At the end of the input it
// returns io.EOF, or an error if an incomplete statement remains. The
// returned slice is valid until the next call.
func (s *splitter) next() (stmt []byte, first string, err error) {
	if cap(s.buf) > bigStatement {
		// Let the memory of a very large statement go rather than
		// keep it for the rest of the script.
		s.buf = nil
	}
	s.buf = s.buf[:0]
	s.first = ""
	s.sawToken = false
	for {
		if len(s.chunk) == 0 {
			if s.rerr != nil {
				if s.rerr != io.EOF {
					return nil, "", s.rerr
				}
				s.finish()
				if s.sawToken {
					return nil, "", fmt.Errorf("incomplete SQL at end of input (truncated dump?): %.80q", s.buf)
				}
				return nil, "", io.EOF
			}
			n, err := s.r.Read(s.rbuf)
			s.chunk, s.rerr = s.rbuf[:n], err
			if n == 0 && err == nil {
				s.rerr = io.ErrNoProgress
			}
			continue
		}
		i, done := s.scan(s.chunk)
		if len(s.buf)+i > s.max {
			return nil, "", fmt.Errorf("%w: over %d bytes", ErrTooLong, s.max)
		}
		s.grow(i)
		s.buf = append(s.buf, s.chunk[:i]...)
		s.n += int64(i)
		s.chunk = s.chunk[i:]
		if done {
			if !s.sawToken {
				// Only whitespace, comments and semicolons: skip.
				s.buf = s.buf[:0]
				continue
			}
			return s.buf, s.first, nil
		}
	}
}

// grow makes room for n more bytes of statement. It doubles the
// buffer, up to max: append would grow a large buffer by a quarter at a
// time, and the arrays it leaves behind add up to several times the
// statement before the garbage collector frees them. Doubling leaves at
// most the statement's size behind.
func (s *splitter) grow(n int) {
	need := len(s.buf) + n
	if need <= cap(s.buf) {
		return
	}
	c := max(2*cap(s.buf), 64<<10, need)
	if c > s.max && need <= s.max {
		c = s.max
	}
	b := make([]byte, len(s.buf), c)
	copy(b, s.buf)
	s.buf = b
}

// finish settles what is pending at the end of the input.
func (s *splitter) finish() {
	switch s.lex {
	case lexDash, lexSlash:
		s.lex = lexNormal
		s.token(tkOther)
	}
	s.endWord()
}

// special marks the bytes that matter inside an ordinary statement.
var special = func() (t [256]bool) {
	for _, c := range []byte("'\"`[-/;") {
		t[c] = true
	}
	return t
}()

// scan consumes bytes of b and reports how many, and whether they end
// with a complete statement.
func (s *splitter) scan(b []byte) (int, bool) {
	i := 0
	for i < len(b) {
		switch s.lex {
		case lexSingle, lexDouble, lexBacktick, lexBracket, lexLineComment:
			j := bytes.IndexByte(b[i:], closer[s.lex])
			if j < 0 {
				return len(b), false
			}
			i += j + 1
			s.lex = lexNormal
			continue
		case lexBlockComment:
			j := bytes.IndexByte(b[i:], '*')
			if j < 0 {
				return len(b), false
			}
			i += j + 1
			s.lex = lexBlockStar
			continue
		case lexBlockStar:
			switch b[i] {
			case '/':
				s.lex = lexNormal
			case '*':
			default:
				s.lex = lexBlockComment
			}
			i++
			continue
		case lexDash:
			s.lex = lexNormal
			if b[i] == '-' {
				i++
				s.lex = lexLineComment
				s.feed(tkWS)
				continue
			}
			s.token(tkOther) // the '-' itself; b[i] is read below
			continue
		case lexSlash:
			s.lex = lexNormal
			if b[i] == '*' {
				i++
				s.lex = lexBlockComment
				s.feed(tkWS)
				continue
			}
			s.token(tkOther)
			continue
		}

		// Normal text. Inside an ordinary statement or a trigger body
		// only quotes, comments and ';' matter: skip to the next one.
		if s.state == cNormal || s.state == cTrigger {
			for i < len(b) && !special[b[i]] {
				i++
			}
			if i == len(b) {
				return i, false
			}
		}
		c := b[i]
		if isIdent(c) {
			s.word = append(s.word, c)
			i++
			continue
		}
		s.endWord()
		i++
		switch c {
		case ' ', '\t', '\n', '\r', '\f': // SQLite's whitespace (not \v)
			s.feed(tkWS)
		case '\'':
			s.lex = lexSingle
			s.token(tkOther)
		case '"':
			s.lex = lexDouble
			s.token(tkOther)
		case '`':
			s.lex = lexBacktick
			s.token(tkOther)
		case '[':
			s.lex = lexBracket
			s.token(tkOther)
		case '-':
			s.lex = lexDash
		case '/':
			s.lex = lexSlash
		case ';':
			s.feed(tkSemi)
			if s.state == cStart {
				return i, true
			}
		default:
			s.token(tkOther)
		}
	}
	return i, false
}

// closer is the byte that ends each quoted or line-comment state.
var closer = [...]byte{lexSingle: '\'', lexDouble: '"', lexBacktick: '`', lexBracket: ']', lexLineComment: '\n'}

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
