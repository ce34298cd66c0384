//! A subset of the pcap-filter(7) language, evaluated on decoded UDP datagrams.
//!
//! Supported primitives: `ip`, `ip6`, `udp`; `tcp`, `sctp`, `icmp`, `icmp6`, `arp`, `rarp`
//! (which never match, as only UDP is delivered); and `[proto] [dir] type id` where `type` is
//! `host A`, `net A/len`, `net A mask M`, `net A` (1 to 4 IPv4 octets), `port N` or
//! `portrange N-M`; `dir` is `src`, `dst`, `src or dst` (the default), or `src and dst`;
//! `proto` is `ip`/`ip6` for hosts and nets, `udp`/`tcp`/`sctp` for ports. Addresses are
//! numeric (no name resolution); numbers are decimal, `0x` hexadecimal, or octal with a
//! leading `0`, as in libpcap.
//!
//! Combinators: `not`/`!`, `and`/`&&`, `or`/`||` and parentheses. As pcap-filter(7) states,
//! negation binds tightest while `and` and `or` have EQUAL precedence and associate left to
//! right, so `a or b and c` means `(a or b) and c`. As in libpcap, an id right after an
//! operator reuses the previous primitive's qualifiers: `port 1 or 2` is `port 1 or port 2`.
//!
//! Like libpcap, a filter that can never match (such as `tcp` or `not udp`) is an error.
//! Anything else (link-layer, VLAN, length or byte-offset expressions, names) is reported as
//! a [`FilterError`] naming the offending token and its byte offset.

use std::fmt;
use std::net::IpAddr;

use super::frame::UdpDatagram;

/// Deeper nesting than this is rejected, which bounds the recursion of parsing, evaluating
/// and dropping an expression whatever the filter text is.
const MAX_DEPTH: usize = 200;

/// Why a filter expression was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    message: String,
    offset: Option<usize>,
}

impl FilterError {
    /// Byte offset in the filter text of the offending token, if there is one.
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }

    fn at(category: &str, token: &Token<'_>, reason: &str) -> FilterError {
        let place: String = match token.kind {
            TokenKind::End => "at end of expression".to_string(),
            _ => format!("at '{}' (offset {})", token.text, token.offset),
        };
        FilterError {
            message: format!("{category} pcap filter expression {place}: {reason}"),
            offset: Some(token.offset),
        }
    }

    fn unsupported(token: &Token<'_>, reason: &str) -> FilterError {
        FilterError::at("unsupported", token, reason)
    }

    fn syntax(token: &Token<'_>, reason: &str) -> FilterError {
        FilterError::at("invalid", token, reason)
    }

    /// A token where something else was expected: unknown words and operators are reported
    /// as unsupported (they may be valid libpcap), anything else as a syntax error.
    fn unexpected(token: &Token<'_>, expected: &str) -> FilterError {
        match token.kind {
            TokenKind::Unknown => FilterError::unsupported(token, "unsupported operator"),
            TokenKind::Word if !is_id(token.text) => {
                FilterError::unsupported(token, "unknown or unsupported keyword")
            }
            _ => FilterError::syntax(token, expected),
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

/// A compiled filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses a filter; an empty (or all-whitespace) filter accepts every UDP datagram.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens: Vec<Token<'_>> = tokenize(text);
        if tokens.len() == 1 {
            return Ok(Filter {
                expr: Expr::Const(true),
            });
        }
        let mut parser: Parser<'_> = Parser {
            tokens,
            position: 0,
            nesting: 0,
            last_qualifiers: None,
        };
        let node: Node = parser.parse_expr()?;
        let trailing: Token<'_> = parser.peek();
        if trailing.kind != TokenKind::End {
            return Err(FilterError::unexpected(
                &trailing,
                "expected 'and', 'or' or end of expression",
            ));
        }
        if node.expr == Expr::Const(false) {
            return Err(FilterError {
                message: "pcap filter expression rejects all packets".to_string(),
                offset: None,
            });
        }
        Ok(Filter { expr: node.expr })
    }

    /// Whether the filter accepts every datagram, so evaluation can be skipped.
    pub fn accepts_all(&self) -> bool {
        self.expr == Expr::Const(true)
    }

    /// Whether the filter accepts this datagram.
    pub fn matches(&self, datagram: &UdpDatagram) -> bool {
        self.expr.eval(datagram)
    }
}

/// A filter expression, with `and`/`or` chains flattened so that long chains stay shallow.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Const(bool),
    Not(Box<Expr>),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Test(Test),
}

impl Expr {
    fn eval(&self, datagram: &UdpDatagram) -> bool {
        match self {
            Expr::Const(value) => *value,
            Expr::Not(inner) => !inner.eval(datagram),
            Expr::All(terms) => terms.iter().all(|term: &Expr| term.eval(datagram)),
            Expr::Any(terms) => terms.iter().any(|term: &Expr| term.eval(datagram)),
            Expr::Test(test) => test.eval(datagram),
        }
    }

    /// Conjunction, folding constants so that never-matching filters are recognised.
    fn and(left: Expr, right: Expr) -> Expr {
        match (left, right) {
            (Expr::Const(false), _) | (_, Expr::Const(false)) => Expr::Const(false),
            (Expr::Const(true), other) | (other, Expr::Const(true)) => other,
            (Expr::All(mut terms), Expr::All(more)) => {
                terms.extend(more);
                Expr::All(terms)
            }
            (Expr::All(mut terms), other) => {
                terms.push(other);
                Expr::All(terms)
            }
            (left, right) => Expr::All(vec![left, right]),
        }
    }

    fn or(left: Expr, right: Expr) -> Expr {
        match (left, right) {
            (Expr::Const(true), _) | (_, Expr::Const(true)) => Expr::Const(true),
            (Expr::Const(false), other) | (other, Expr::Const(false)) => other,
            (Expr::Any(mut terms), Expr::Any(more)) => {
                terms.extend(more);
                Expr::Any(terms)
            }
            (Expr::Any(mut terms), other) => {
                terms.push(other);
                Expr::Any(terms)
            }
            (left, right) => Expr::Any(vec![left, right]),
        }
    }

    fn not(inner: Expr) -> Expr {
        match inner {
            Expr::Const(value) => Expr::Const(!value),
            Expr::Not(inner) => *inner,
            other => Expr::Not(Box::new(other)),
        }
    }
}

/// A primitive test on a UDP datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    Ipv4,
    Ipv6,
    Address(Direction, Net),
    Ports(Direction, u16, u16),
}

impl Test {
    fn eval(&self, datagram: &UdpDatagram) -> bool {
        match self {
            Test::Ipv4 => datagram.src.is_ipv4(),
            Test::Ipv6 => datagram.src.is_ipv6(),
            Test::Address(direction, net) => {
                direction.apply(net.contains(datagram.src), net.contains(datagram.dst))
            }
            Test::Ports(direction, low, high) => {
                let range: std::ops::RangeInclusive<u16> = *low..=*high;
                direction.apply(
                    range.contains(&datagram.src_port),
                    range.contains(&datagram.dst_port),
                )
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
}

impl Direction {
    fn apply(self, src: bool, dst: bool) -> bool {
        match self {
            Direction::Src => src,
            Direction::Dst => dst,
            Direction::SrcOrDst => src || dst,
            Direction::SrcAndDst => src && dst,
        }
    }
}

/// An address with a mask; a host is a net with a full mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
}

impl Net {
    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Net::V4 { addr, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == addr,
            (Net::V6 { addr, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == addr,
            _ => false,
        }
    }

    fn is_ipv4(self) -> bool {
        matches!(self, Net::V4 { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Word,
    LeftParen,
    RightParen,
    And,
    Or,
    Not,
    /// Characters outside the supported language, such as comparison operators.
    Unknown,
    End,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: TokenKind,
    text: &'a str,
    offset: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '/' | '_')
}

/// An id (address, number or range) rather than a keyword. Names are not resolved, so
/// anything starting with a letter is a keyword unless it is an IPv6 literal.
fn is_id(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_digit()) || word.contains(':')
}

/// Splits the filter into tokens, always ending with an `End` token.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens: Vec<Token<'_>> = Vec::new();
    let mut rest: &str = text;
    loop {
        rest = rest.trim_start();
        let offset: usize = text.len() - rest.len();
        let Some(first) = rest.chars().next() else {
            break;
        };
        let (kind, len): (TokenKind, usize) = if first == '(' {
            (TokenKind::LeftParen, 1)
        } else if first == ')' {
            (TokenKind::RightParen, 1)
        } else if rest.starts_with("&&") {
            (TokenKind::And, 2)
        } else if rest.starts_with("||") {
            (TokenKind::Or, 2)
        } else if first == '!' && !rest.starts_with("!=") {
            (TokenKind::Not, 1)
        } else if is_word_char(first) {
            let len: usize = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
            let kind: TokenKind = match &rest[..len] {
                "and" => TokenKind::And,
                "or" => TokenKind::Or,
                "not" => TokenKind::Not,
                _ => TokenKind::Word,
            };
            (kind, len)
        } else {
            let len: usize = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (TokenKind::Unknown, len)
        };
        tokens.push(Token {
            kind,
            text: &rest[..len],
            offset,
        });
        rest = &rest[len..];
    }
    tokens.push(Token {
        kind: TokenKind::End,
        text: "",
        offset: text.len(),
    });
    tokens
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Ip,
    Ip6,
    Udp,
    /// A protocol that is never UDP (tcp, sctp, icmp, icmp6, arp, rarp).
    NotUdp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdType {
    Host,
    Net,
    Port,
    PortRange,
}

/// The qualifiers of a primitive, kept so that a following bare id can reuse them.
#[derive(Clone, Copy, Debug)]
struct Qualifiers<'a> {
    proto: Option<(Proto, Token<'a>)>,
    direction: Direction,
    id_type: IdType,
}

fn proto_keyword(word: &str) -> Option<Proto> {
    match word {
        "ip" => Some(Proto::Ip),
        "ip6" => Some(Proto::Ip6),
        "udp" => Some(Proto::Udp),
        "tcp" | "sctp" | "icmp" | "icmp6" | "arp" | "rarp" => Some(Proto::NotUdp),
        _ => None,
    }
}

fn id_type_keyword(word: &str) -> Option<IdType> {
    match word {
        "host" => Some(IdType::Host),
        "net" => Some(IdType::Net),
        "port" => Some(IdType::Port),
        "portrange" => Some(IdType::PortRange),
        _ => None,
    }
}

/// A parsed expression with an upper bound on its nesting depth.
struct Node {
    expr: Expr,
    depth: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, depth: 1 }
    }
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    position: usize,
    /// Current depth of parentheses and negations, bounding the parser's recursion.
    nesting: usize,
    last_qualifiers: Option<Qualifiers<'a>>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Token<'a> {
        let last: usize = self.tokens.len() - 1;
        self.tokens[(self.position + ahead).min(last)]
    }

    fn advance(&mut self) -> Token<'a> {
        let token: Token<'a> = self.peek();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    /// expr := term (('and' | 'or') term)*, left-associative with equal precedence.
    fn parse_expr(&mut self) -> Result<Node, FilterError> {
        let mut left: Node = self.parse_term()?;
        loop {
            let operator: Token<'a> = self.peek();
            if !matches!(operator.kind, TokenKind::And | TokenKind::Or) {
                return Ok(left);
            }
            self.advance();
            let right: Node = self.parse_term()?;
            left = combine(&operator, left, right)?;
        }
    }

    /// term := ('not' | '!') term | '(' expr ')' | primitive | id
    fn parse_term(&mut self) -> Result<Node, FilterError> {
        let token: Token<'a> = self.peek();
        match token.kind {
            TokenKind::Not => {
                self.enter(&token)?;
                self.advance();
                let inner: Node = self.parse_term()?;
                self.nesting -= 1;
                Ok(Node {
                    expr: Expr::not(inner.expr),
                    depth: inner.depth + 1,
                })
            }
            TokenKind::LeftParen => {
                self.enter(&token)?;
                self.advance();
                let inner: Node = self.parse_expr()?;
                let close: Token<'a> = self.advance();
                if close.kind != TokenKind::RightParen {
                    return Err(FilterError::syntax(&close, "expected ')'"));
                }
                self.nesting -= 1;
                Ok(inner)
            }
            TokenKind::Word if is_id(token.text) => match self.last_qualifiers {
                Some(qualifiers) => self.parse_id(qualifiers),
                None => Err(FilterError::syntax(
                    &token,
                    "an address or number needs a qualifier such as 'host' or 'port'",
                )),
            },
            TokenKind::Word => self.parse_primitive(),
            _ => Err(FilterError::unexpected(&token, "expected a primitive")),
        }
    }

    fn enter(&mut self, token: &Token<'a>) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(FilterError::unsupported(
                token,
                "expression nested too deeply",
            ));
        }
        Ok(())
    }

    /// primitive := proto | [proto] [dir] [type] id, with at least one qualifier.
    fn parse_primitive(&mut self) -> Result<Node, FilterError> {
        let first: Token<'a> = self.peek();
        let proto: Option<(Proto, Token<'a>)> =
            proto_keyword(first.text).map(|proto: Proto| (proto, self.advance()));
        let direction: Option<Direction> = self.parse_direction();
        let id_type: Option<IdType> = id_type_keyword(self.peek().text).inspect(|_| {
            self.advance();
        });
        if direction.is_none() && id_type.is_none() {
            return match proto {
                Some((proto, _)) => Ok(Node::leaf(proto_alone(proto))),
                None => Err(FilterError::unsupported(
                    &first,
                    "unknown or unsupported keyword",
                )),
            };
        }
        let qualifiers: Qualifiers<'a> = Qualifiers {
            proto,
            direction: direction.unwrap_or(Direction::SrcOrDst),
            id_type: id_type.unwrap_or(IdType::Host),
        };
        self.last_qualifiers = Some(qualifiers);
        let id: Token<'a> = self.peek();
        if id.kind == TokenKind::Word && !is_id(id.text) {
            return Err(FilterError::unsupported(
                &id,
                "names are not resolved; expected a numeric address, port or port range",
            ));
        }
        if id.kind != TokenKind::Word {
            return Err(FilterError::unexpected(
                &id,
                "expected a numeric address, port or port range",
            ));
        }
        self.parse_id(qualifiers)
    }

    /// dir := 'src' | 'dst' | 'src or dst' | 'src and dst' (or with src and dst swapped).
    fn parse_direction(&mut self) -> Option<Direction> {
        let first: Direction = match self.peek().text {
            "src" => Direction::Src,
            "dst" => Direction::Dst,
            _ => return None,
        };
        self.advance();
        let operator: TokenKind = self.peek().kind;
        let other: &str = if first == Direction::Src {
            "dst"
        } else {
            "src"
        };
        let combines: bool = matches!(operator, TokenKind::And | TokenKind::Or)
            && self.peek_at(1).kind == TokenKind::Word
            && self.peek_at(1).text == other;
        if !combines {
            return Some(first);
        }
        self.advance();
        self.advance();
        Some(if operator == TokenKind::And {
            Direction::SrcAndDst
        } else {
            Direction::SrcOrDst
        })
    }

    /// Parses the id following the qualifiers into a test.
    fn parse_id(&mut self, qualifiers: Qualifiers<'a>) -> Result<Node, FilterError> {
        let id: Token<'a> = self.advance();
        let expr: Expr = match qualifiers.id_type {
            IdType::Host => {
                let net: Net = parse_host(&id)?;
                address_test(qualifiers, net, "host")?
            }
            IdType::Net => {
                let net: Net = self.parse_net(&id)?;
                address_test(qualifiers, net, "net")?
            }
            IdType::Port => {
                let port: u16 = parse_port(&id, id.text)?;
                port_test(qualifiers, port, port, "port")?
            }
            IdType::PortRange => {
                let (low, high): (u16, u16) = parse_port_range(&id)?;
                port_test(qualifiers, low, high, "portrange")?
            }
        };
        Ok(Node::leaf(expr))
    }

    /// net := A/len | A mask M | A (an IPv4 prefix of 1 to 4 octets, or an IPv6 address).
    fn parse_net(&mut self, id: &Token<'a>) -> Result<Net, FilterError> {
        if self.peek().text == "mask" {
            self.advance();
            let mask_token: Token<'a> = self.advance();
            let (addr, mask): (u32, u32) = match (parse_ipv4(id.text), parse_ipv4(mask_token.text))
            {
                (Some(addr), Some(mask)) => (addr, mask),
                (None, _) => return Err(FilterError::syntax(id, "invalid IPv4 network")),
                (_, None) => return Err(FilterError::syntax(&mask_token, "invalid IPv4 netmask")),
            };
            return checked_net(id, Net::V4 { addr, mask });
        }
        let net: Net = match id.text.split_once('/') {
            Some((addr, len)) => parse_cidr(id, addr, len)?,
            None => parse_partial_net(id)?,
        };
        checked_net(id, net)
    }
}

fn combine(operator: &Token<'_>, left: Node, right: Node) -> Result<Node, FilterError> {
    let is_and: bool = operator.kind == TokenKind::And;
    // Extending a flattened chain of the same operator does not deepen the tree.
    let extends: bool = match &left.expr {
        Expr::All(_) => is_and,
        Expr::Any(_) => !is_and,
        _ => false,
    };
    let depth: usize = if extends {
        left.depth.max(right.depth + 1)
    } else {
        left.depth.max(right.depth) + 1
    };
    if depth > MAX_DEPTH {
        return Err(FilterError::unsupported(
            operator,
            "expression nested too deeply",
        ));
    }
    let expr: Expr = if is_and {
        Expr::and(left.expr, right.expr)
    } else {
        Expr::or(left.expr, right.expr)
    };
    Ok(Node { expr, depth })
}

fn proto_alone(proto: Proto) -> Expr {
    match proto {
        Proto::Ip => Expr::Test(Test::Ipv4),
        Proto::Ip6 => Expr::Test(Test::Ipv6),
        Proto::Udp => Expr::Const(true),
        Proto::NotUdp => Expr::Const(false),
    }
}

fn address_test(qualifiers: Qualifiers<'_>, net: Net, what: &str) -> Result<Expr, FilterError> {
    if let Some((proto, token)) = qualifiers.proto {
        let family_ok: bool = match proto {
            Proto::Ip => net.is_ipv4(),
            Proto::Ip6 => !net.is_ipv4(),
            Proto::Udp | Proto::NotUdp => {
                let reason: String = format!("'{}' modifier applied to {what}", token.text);
                return Err(FilterError::syntax(&token, &reason));
            }
        };
        if !family_ok {
            let family: &str = if net.is_ipv4() { "ip" } else { "ip6" };
            let reason: String = format!("'{}' modifier applied to {family} {what}", token.text);
            return Err(FilterError::syntax(&token, &reason));
        }
    }
    Ok(Expr::Test(Test::Address(qualifiers.direction, net)))
}

fn port_test(
    qualifiers: Qualifiers<'_>,
    low: u16,
    high: u16,
    what: &str,
) -> Result<Expr, FilterError> {
    match qualifiers.proto {
        None | Some((Proto::Udp, _)) => {
            Ok(Expr::Test(Test::Ports(qualifiers.direction, low, high)))
        }
        Some((Proto::NotUdp, token)) if matches!(token.text, "tcp" | "sctp") => {
            Ok(Expr::Const(false))
        }
        Some((_, token)) => {
            let reason: String = format!("illegal qualifier of '{what}'");
            Err(FilterError::syntax(&token, &reason))
        }
    }
}

fn parse_host(id: &Token<'_>) -> Result<Net, FilterError> {
    match id.text.parse::<IpAddr>() {
        Ok(IpAddr::V4(addr)) => Ok(Net::V4 {
            addr: u32::from(addr),
            mask: u32::MAX,
        }),
        Ok(IpAddr::V6(addr)) => Ok(Net::V6 {
            addr: u128::from(addr),
            mask: u128::MAX,
        }),
        Err(_) => Err(FilterError::syntax(
            id,
            "not a numeric IPv4 or IPv6 address (names are not resolved)",
        )),
    }
}

fn parse_ipv4(text: &str) -> Option<u32> {
    text.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

fn parse_cidr(id: &Token<'_>, addr: &str, len: &str) -> Result<Net, FilterError> {
    let bits: Option<u32> = parse_number(len);
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => match bits.filter(|bits: &u32| *bits <= 32) {
            Some(bits) => Ok(Net::V4 {
                addr: u32::from(ip),
                mask: u32::MAX.checked_shl(32 - bits).unwrap_or(0),
            }),
            None => Err(FilterError::syntax(id, "invalid IPv4 prefix length")),
        },
        Ok(IpAddr::V6(ip)) => match bits.filter(|bits: &u32| *bits <= 128) {
            Some(bits) => Ok(Net::V6 {
                addr: u128::from(ip),
                mask: u128::MAX.checked_shl(128 - bits).unwrap_or(0),
            }),
            None => Err(FilterError::syntax(id, "invalid IPv6 prefix length")),
        },
        Err(_) => Err(FilterError::syntax(id, "invalid network address")),
    }
}

/// `10` is 10.0.0.0/8, `10.1` is 10.1.0.0/16, and so on, as in libpcap.
fn parse_partial_net(id: &Token<'_>) -> Result<Net, FilterError> {
    if let Ok(std::net::IpAddr::V6(ip)) = id.text.parse::<IpAddr>() {
        return Ok(Net::V6 {
            addr: u128::from(ip),
            mask: u128::MAX,
        });
    }
    let octets: Vec<&str> = id.text.split('.').collect();
    let mut addr: u32 = 0;
    for octet in &octets {
        match octet.parse::<u8>() {
            Ok(value) if octets.len() <= 4 => addr = addr << 8 | u32::from(value),
            _ => return Err(FilterError::syntax(id, "invalid network address")),
        }
    }
    let bits: u32 = 8 * octets.len() as u32;
    Ok(Net::V4 {
        addr: addr.checked_shl(32 - bits).unwrap_or(0),
        mask: u32::MAX.checked_shl(32 - bits).unwrap_or(0),
    })
}

/// libpcap rejects networks with bits set outside the mask, as they are likely mistakes.
fn checked_net(id: &Token<'_>, net: Net) -> Result<Net, FilterError> {
    let clean: bool = match net {
        Net::V4 { addr, mask } => addr & !mask == 0,
        Net::V6 { addr, mask } => addr & !mask == 0,
    };
    if clean {
        Ok(net)
    } else {
        Err(FilterError::syntax(
            id,
            "non-network bits set in network address",
        ))
    }
}

/// Parses a number as libpcap does: decimal, `0x` hexadecimal, or octal with a leading 0.
fn parse_number(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if text.len() > 1 && text.starts_with('0') {
        return u32::from_str_radix(&text[1..], 8).ok();
    }
    text.parse::<u32>().ok()
}

fn parse_port(id: &Token<'_>, text: &str) -> Result<u16, FilterError> {
    let Some(value) = parse_number(text) else {
        return Err(FilterError::syntax(
            id,
            "not a port number (service names are not resolved)",
        ));
    };
    u16::try_from(value).map_err(|_| {
        let reason: String = format!("illegal port number {value} > 65535");
        FilterError::syntax(id, &reason)
    })
}

fn parse_port_range(id: &Token<'_>) -> Result<(u16, u16), FilterError> {
    let Some((first, second)) = id.text.split_once('-') else {
        return Err(FilterError::syntax(
            id,
            "expected a port range such as 1000-2000",
        ));
    };
    let first: u16 = parse_port(id, first)?;
    let second: u16 = parse_port(id, second)?;
    Ok((first.min(second), first.max(second)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(src: &str, dst: &str, src_port: u16, dst_port: u16) -> UdpDatagram {
        UdpDatagram {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port,
            dst_port,
            payload: 0..0,
        }
    }

    /// The datagrams that the truth tables below refer to by index.
    fn samples() -> Vec<UdpDatagram> {
        vec![
            datagram("10.0.0.1", "10.0.0.2", 1000, 7148),   // 0
            datagram("10.0.0.2", "192.168.1.5", 7148, 53),  // 1
            datagram("fe80::1", "ff02::2", 1000, 2000),     // 2
            datagram("2001:db8::5", "fe80::1", 7148, 7148), // 3
        ]
    }

    /// Indices of the samples a filter accepts.
    fn accepted(filter: &str) -> Vec<usize> {
        let filter: Filter = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        samples()
            .iter()
            .enumerate()
            .filter(|(_, datagram)| filter.matches(datagram))
            .map(|(index, _)| index)
            .collect()
    }

    fn error(filter: &str) -> String {
        Filter::parse(filter).unwrap_err().to_string()
    }

    #[test]
    fn empty_filter_accepts_everything() {
        assert!(Filter::parse("").unwrap().accepts_all());
        assert!(Filter::parse("  \t").unwrap().accepts_all());
        assert_eq!(accepted(""), vec![0, 1, 2, 3]);
        assert!(Filter::parse("udp").unwrap().accepts_all());
    }

    #[test]
    fn protocol_primitives() {
        assert_eq!(accepted("ip"), vec![0, 1]);
        assert_eq!(accepted("ip6"), vec![2, 3]);
        assert_eq!(accepted("udp"), vec![0, 1, 2, 3]);
        assert_eq!(accepted("not tcp"), vec![0, 1, 2, 3]);
        assert_eq!(accepted("ip or tcp"), vec![0, 1]);
        assert_eq!(accepted("not arp and ip6"), vec![2, 3]);
    }

    #[test]
    fn port_primitives() {
        assert_eq!(accepted("port 7148"), vec![0, 1, 3]);
        assert_eq!(accepted("src port 7148"), vec![1, 3]);
        assert_eq!(accepted("dst port 7148"), vec![0, 3]);
        assert_eq!(accepted("src and dst port 7148"), vec![3]);
        assert_eq!(accepted("src or dst port 53"), vec![1]);
        assert_eq!(accepted("dst or src port 1000"), vec![0, 2]);
        assert_eq!(accepted("udp port 2000"), vec![2]);
        assert_eq!(accepted("udp dst port 0x7d0"), vec![2]);
        assert_eq!(accepted("port 065"), vec![1]); // octal 65 = 53
        assert_eq!(accepted("portrange 1000-2000"), vec![0, 2]);
        assert_eq!(accepted("dst portrange 7148-2001"), vec![0, 3]);
        assert_eq!(accepted("ip6 or tcp port 1000"), vec![2, 3]);
    }

    #[test]
    fn host_and_net_primitives() {
        assert_eq!(accepted("host 10.0.0.2"), vec![0, 1]);
        assert_eq!(accepted("src host 10.0.0.2"), vec![1]);
        assert_eq!(accepted("dst host 10.0.0.2"), vec![0]);
        assert_eq!(accepted("host fe80::1"), vec![2, 3]);
        assert_eq!(accepted("dst host fe80::1"), vec![3]);
        assert_eq!(accepted("ip host 10.0.0.1"), vec![0]);
        assert_eq!(accepted("ip6 src host fe80::1"), vec![2]);
        assert_eq!(accepted("net 10"), vec![0, 1]);
        assert_eq!(accepted("dst net 192.168"), vec![1]);
        assert_eq!(accepted("net 192.168.0.0/16"), vec![1]);
        assert_eq!(accepted("net 192.168.0.0 mask 255.255.0.0"), vec![1]);
        assert_eq!(accepted("src and dst net 10.0.0.0/8"), vec![0]);
        assert_eq!(accepted("net fe80::/10"), vec![2, 3]);
        assert_eq!(accepted("net ::/0"), vec![2, 3]);
        assert_eq!(accepted("net 0.0.0.0/0"), vec![0, 1]);
        assert_eq!(accepted("src net 2001:db8::/32"), vec![3]);
    }

    #[test]
    fn combinations_and_precedence() {
        assert_eq!(accepted("ip and port 1000"), vec![0]);
        assert_eq!(accepted("ip && port 1000"), vec![0]);
        assert_eq!(accepted("port 53 or port 2000"), vec![1, 2]);
        assert_eq!(accepted("port 53 || port 2000"), vec![1, 2]);
        assert_eq!(accepted("not port 7148"), vec![2]);
        assert_eq!(accepted("! port 7148"), vec![2]);
        assert_eq!(accepted("!(ip6)"), vec![0, 1]);
        // Equal precedence, left to right: (port 53 or port 2000) and ip6.
        assert_eq!(accepted("port 53 or port 2000 and ip6"), vec![2]);
        assert_eq!(accepted("port 53 or (port 2000 and ip6)"), vec![1, 2]);
        // Negation binds tighter than and/or.
        assert_eq!(accepted("not ip and port 7148"), vec![3]);
        assert_eq!(accepted("not (ip and port 7148)"), vec![2, 3]);
        assert_eq!(accepted("((ip6) and (not (dst port 2000)))"), vec![3]);
        assert_eq!(accepted("not not ip"), vec![0, 1]);
    }

    #[test]
    fn bare_ids_reuse_qualifiers() {
        assert_eq!(accepted("port 53 or 2000"), vec![1, 2]);
        assert_eq!(accepted("src port 1000 or 7148"), vec![0, 1, 2, 3]);
        assert_eq!(accepted("dst host 10.0.0.2 or 192.168.1.5"), vec![0, 1]);
        assert_eq!(accepted("port 7148 and not 53"), vec![0, 3]);
        assert_eq!(accepted("ip6 and dst port 2000 or 7148"), vec![0, 2, 3]);
    }

    #[test]
    fn unsupported_keywords_are_named() {
        assert_eq!(
            error("ether host 01:02:03:04:05:06"),
            "unsupported pcap filter expression at 'ether' (offset 0): unknown or unsupported keyword"
        );
        assert_eq!(
            error("udp and vlan"),
            "unsupported pcap filter expression at 'vlan' (offset 8): unknown or unsupported keyword"
        );
        let message: String = error("len > 100");
        assert!(
            message.starts_with("unsupported pcap filter expression at 'len'"),
            "{message}"
        );
        let message: String = error("ip proto 17");
        assert!(message.contains("at 'proto' (offset 3)"), "{message}");
        let message: String = error("udp[8] = 0x53");
        assert!(message.contains("at '[8]'"), "{message}");
        let message: String = error("port 1 and port != 3");
        assert!(message.contains("at '!='"), "{message}");
        assert_eq!(
            Filter::parse("port 1 and ether").unwrap_err().offset(),
            Some(11)
        );
        assert!(error("UDP").contains("at 'UDP'"));
        assert!(error("port domain").contains("at 'domain' (offset 5): names are not resolved"));
        assert!(error("host localhost").contains("at 'localhost'"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            error("udp and"),
            "invalid pcap filter expression at end of expression: expected a primitive"
        );
        assert!(error("(udp").contains("expected ')'"));
        assert!(error("udp)").contains("at ')' (offset 3)"));
        assert!(error("and udp").contains("at 'and' (offset 0)"));
        assert!(error("port").contains("at end of expression"));
        assert!(error("port )").starts_with("invalid pcap filter expression at ')'"));
        assert!(error("10.0.0.1").contains("needs a qualifier"));
        assert!(error("port 99999").contains("illegal port number 99999 > 65535"));
        assert!(error("port 080").contains("not a port number"));
        assert!(error("portrange 5").contains("port range"));
        assert!(error("udp host 10.0.0.1").contains("'udp' modifier applied to host"));
        assert!(error("ip6 host 10.0.0.1").contains("'ip6' modifier applied to ip host"));
        assert!(error("ip host ::1").contains("'ip' modifier applied to ip6 host"));
        assert!(error("ip port 80").contains("illegal qualifier of 'port'"));
        assert!(error("net 10.0.0.1/8").contains("non-network bits"));
        assert!(error("net 10.0.0.0/33").contains("prefix length"));
        assert!(error("net 10.0.0.0 mask 255.0.0").contains("netmask"));
        assert!(error("host 10.0.0").contains("not a numeric"));
    }

    #[test]
    fn never_matching_filters_are_rejected() {
        for filter in [
            "tcp",
            "not udp",
            "sctp or icmp",
            "tcp port 80",
            "ip and arp",
        ] {
            assert_eq!(
                error(filter),
                "pcap filter expression rejects all packets",
                "{filter}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep: String = "(".repeat(MAX_DEPTH + 1) + "udp" + &")".repeat(MAX_DEPTH + 1);
        assert!(error(&deep).contains("nested too deeply"));
        let nots: String = "not ".repeat(MAX_DEPTH + 1) + "ip";
        assert!(error(&nots).contains("nested too deeply"));
        let mut alternating: String = String::from("port 0");
        for i in 1..=MAX_DEPTH {
            alternating += if i % 2 == 0 { " and " } else { " or " };
            alternating += &format!("port {i}");
        }
        assert!(error(&alternating).contains("nested too deeply"));
        let allowed: String = "(".repeat(MAX_DEPTH - 1) + "ip" + &")".repeat(MAX_DEPTH - 1);
        assert_eq!(
            Filter::parse(&allowed).unwrap(),
            Filter::parse("ip").unwrap()
        );
    }

    #[test]
    fn long_flat_chains_are_fine() {
        let ports: String = (0..10_000)
            .map(|port: u32| format!("port {port}"))
            .collect::<Vec<String>>()
            .join(" or ");
        assert_eq!(accepted(&ports), vec![0, 1, 2, 3]);
        let excluded: String = (1..10_000)
            .map(|port: u32| format!("not port {port}"))
            .collect::<Vec<String>>()
            .join(" and ");
        assert_eq!(accepted(&excluded), Vec::<usize>::new());
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let mut rng: crate::recv::pcap::testutil::Rng = crate::recv::pcap::testutil::Rng(99);
        let pieces: [&str; 22] = [
            "udp", "ip", "ip6", "port", "src", "dst", "host", "net", "and", "or", "not", "(", ")",
            "!", "&&", "||", "10.0.0.1", "::1", "53", "1-2", "mask", "é",
        ];
        for _ in 0..5000 {
            let count: usize = rng.below(8);
            let text: String = (0..count)
                .map(|_| pieces[rng.below(pieces.len())])
                .collect::<Vec<&str>>()
                .join(" ");
            let _ = Filter::parse(&text);
        }
    }
}
