package api

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"zombiezen.com/go/sqlite"
)

// connPool is one database's pool of read-write connections for queries
// and imports.
//
// A request can give a connection state of its own: TEMP tables, views
// and triggers (which shadow main's objects for every later statement on
// that connection), an attached database, a PRAGMA setting, an open
// transaction. None of it may reach the next request, whatever its role.
// Rather than undo each kind of state (SQLite has no call that resets a
// connection: SQLITE_DBCONFIG_RESET_DATABASE empties the database file
// itself), the pool closes a connection that a request changed and opens
// a fresh one for the next; a new connection has no state to leak.
//
// A connection counts as changed when its authorizer saw an action that
// changes connection state (changesConnState), when a transaction could
// not be rolled back, or when a check on return still finds a TEMP object
// or an attached database. Plain reads and writes of main do not change
// it, so the common request reuses its connection.
type connPool struct {
	name  string
	open  func() (*sqlite.Conn, error)
	slots chan struct{} // one token per connection in use

	mu     sync.Mutex
	idle   []*pooledConn
	inUse  map[*sqlite.Conn]*pooledConn
	closed bool
}

// pooledConn is a connection and what the pool knows of its use.
type pooledConn struct {
	conn *sqlite.Conn
	auth sqlite.Authorizer
	// client applies the client token's SQL rules (clientAuthorizer)
	// while a client request holds the connection.
	client bool
	// dirty is set when the request changed the connection's state.
	dirty bool
	// maxLength is the connection's SQLITE_LIMIT_LENGTH when idle.
	maxLength int32
}

// connUse says how a request will use a pooled connection.
type connUse struct {
	client bool
	// maxValue, when positive, is SQLITE_LIMIT_LENGTH while the
	// request holds the connection: the largest string or blob SQLite
	// may build.
	maxValue int64
}

func newConnPool(name string, size int, open func() (*sqlite.Conn, error)) *connPool {
	return &connPool{name: name, open: open, slots: make(chan struct{}, size), inUse: map[*sqlite.Conn]*pooledConn{}}
}

var errPoolClosed = errors.New("the database is closed")

// take returns a connection whose statements are interrupted when ctx
// ends. Release it with put.
func (p *connPool) take(ctx context.Context, use connUse) (*sqlite.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("database %s: wait for a connection: %w", p.name, ctx.Err())
	}
	pc, err := p.idleOrNew()
	if err != nil {
		<-p.slots
		return nil, err
	}
	pc.client, pc.dirty = use.client, false
	if use.maxValue > 0 {
		pc.conn.Limit(sqlite.LimitLength, clampInt32(use.maxValue))
	}
	pc.conn.SetInterrupt(ctx.Done())
	p.mu.Lock()
	p.inUse[pc.conn] = pc
	p.mu.Unlock()
	return pc.conn, nil
}

func (p *connPool) idleOrNew() (*pooledConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("database %s: %w", p.name, errPoolClosed)
	}
	if n := len(p.idle); n > 0 {
		pc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()
	conn, err := p.open()
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", p.name, err)
	}
	pc := &pooledConn{conn: conn, maxLength: conn.Limit(sqlite.LimitLength, -1)}
	pc.auth = sqlite.AuthorizeFunc(pc.authorize)
	if err := conn.SetAuthorizer(pc.auth); err != nil {
		conn.Close()
		return nil, fmt.Errorf("database %s: set authorizer: %w", p.name, err)
	}
	return pc, nil
}

// authorize applies the client rules to a client request and notes any
// action that changes the connection's state.
func (pc *pooledConn) authorize(a sqlite.Action) sqlite.AuthResult {
	if pc.client {
		if res := clientAuthorizer(a); res != sqlite.AuthResultOK {
			return res
		}
	}
	if changesConnState(a) {
		pc.dirty = true
	}
	return sqlite.AuthResultOK
}

// authorizer returns the authorizer the pool installed on conn, for code
// (sqlload) that installs its own for a while and puts this one back.
func (p *connPool) authorizer(conn *sqlite.Conn) sqlite.Authorizer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc := p.inUse[conn]; pc != nil {
		return pc.auth
	}
	return nil
}

// changesConnState reports whether an authorized action leaves state on
// the connection beyond committed data in main: an attached database,
// any write to the temp schema (a TEMP table, view, trigger or index, or
// its rows), or a PRAGMA other than the plain reads a client may run.
func changesConnState(a sqlite.Action) bool {
	switch a.Type() {
	case sqlite.OpAttach, sqlite.OpDetach:
		return true
	case sqlite.OpPragma:
		return !readOnlyPragma(a)
	case sqlite.OpCreateTempIndex, sqlite.OpCreateTempTable, sqlite.OpCreateTempTrigger, sqlite.OpCreateTempView:
		return true
	case sqlite.OpRead, sqlite.OpSelect, sqlite.OpFunction:
		return false
	}
	// A TEMP trigger on a main table is reported as CREATE_TRIGGER in
	// main; its row goes into the temp schema, which shows here.
	return a.Database() == "temp"
}

// put returns a connection to the pool, or closes it when the request
// left state on it.
func (p *connPool) put(conn *sqlite.Conn) {
	p.mu.Lock()
	pc := p.inUse[conn]
	delete(p.inUse, conn)
	p.mu.Unlock()
	if pc == nil {
		panic("api: put of a connection the pool did not hand out")
	}
	conn.SetInterrupt(nil)
	pc.client = false
	if !conn.AutocommitEnabled() {
		if err := exec(conn, "ROLLBACK"); err != nil {
			pc.dirty = true
		}
	}
	conn.Limit(sqlite.LimitLength, pc.maxLength)
	if !pc.dirty && conn.CheckReset() != "" {
		pc.dirty = true // a statement left running
	}
	if !pc.dirty && leftState(conn) {
		pc.dirty = true
	}
	p.mu.Lock()
	if pc.dirty || p.closed {
		p.mu.Unlock()
		conn.Close()
	} else {
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
	}
	<-p.slots
}

// leftState checks what the authorizer should already have seen: a TEMP
// object or an attached database. Any error counts as state left. (Two
// plain statements: the pragma_database_list table function costs ten
// times as much.)
func leftState(conn *sqlite.Conn) bool {
	// count counts the rows of sql for which keep is true.
	count := func(sql string, keep func(*sqlite.Stmt) bool) (int, error) {
		stmt, err := conn.Prepare(sql)
		if err != nil {
			return 0, err
		}
		defer stmt.Reset()
		n := 0
		for {
			row, err := stmt.Step()
			if err != nil || !row {
				return n, err
			}
			if keep(stmt) {
				n++
			}
		}
	}
	temp, err := count("SELECT 1 FROM temp.sqlite_schema LIMIT 1", func(*sqlite.Stmt) bool { return true })
	if err != nil || temp > 0 {
		return true
	}
	attached, err := count("PRAGMA database_list", func(s *sqlite.Stmt) bool {
		name := s.ColumnText(1)
		return name != "main" && name != "temp"
	})
	return err != nil || attached > 0
}

// close waits for every connection in use to come back, then closes
// them all.
func (p *connPool) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for i := 0; i < cap(p.slots); i++ {
		p.slots <- struct{}{}
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var first error
	for _, pc := range idle {
		if err := pc.conn.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func clampInt32(n int64) int32 {
	const max = 1<<31 - 1
	if n > max {
		return max
	}
	return int32(n)
}
