<?php

/**
 * The OpenEMR session and CSRF helpers, the same way on every OpenEMR line the module supports.
 *
 * OpenEMR 8.x keeps its session values inside a Symfony session (SessionWrapperFactory::getActiveSession(); the
 * values are no longer top-level `$_SESSION` keys) and its CsrfUtils methods take that session object; 7.0.x has
 * plain `$_SESSION` keys (read and closed early in globals.php, so a write needs SessionUtil::setSession) and
 * CsrfUtils methods without it. What this OpenEMR has is detected from its classes and method signatures, never
 * from the version string.
 *
 * @license Apache-2.0
 */

namespace OpenEMR\Modules\BlueButtonDirect;

final class OpenEmrSession
{
    public const FACTORY = 'OpenEMR\\Common\\Session\\SessionWrapperFactory';
    public const UTIL = 'OpenEMR\\Common\\Session\\SessionUtil';
    public const CSRF = 'OpenEMR\\Common\\Csrf\\CsrfUtils';

    /** The 8.x session object (Symfony SessionInterface), or null where OpenEMR still uses `$_SESSION` keys. */
    public static function session(): ?object
    {
        if (!class_exists(self::FACTORY) || !method_exists(self::FACTORY, 'getInstance')) {
            return null;
        }
        $factory = (self::FACTORY)::getInstance();
        return method_exists($factory, 'getActiveSession') ? $factory->getActiveSession() : null;
    }

    public static function get(string $key, mixed $default = null): mixed
    {
        $session = self::session();
        if ($session !== null) {
            return $session->get($key, $default);
        }
        return $_SESSION[$key] ?? $default;
    }

    /**
     * Write one value. SessionUtil::setSession reopens a read-and-closed 7.0.x session (a plain `$_SESSION` write
     * would be lost) and writes through on 8.x. Call it before any output (it may start the session).
     */
    public static function set(string $key, mixed $value): void
    {
        if (class_exists(self::UTIL) && method_exists(self::UTIL, 'setSession')) {
            (self::UTIL)::setSession($key, $value);
            return;
        }
        $_SESSION[$key] = $value;
    }

    /** Remove one value (before any output, as set()). */
    public static function remove(string $key): void
    {
        if (class_exists(self::UTIL) && method_exists(self::UTIL, 'unsetSession')) {
            (self::UTIL)::unsetSession($key);
            return;
        }
        unset($_SESSION[$key]);
    }

    /** The open chart's patient (pid), 0 when none. Never a posted value. */
    public static function pid(): int
    {
        $pid = self::get('pid');
        if (!is_numeric($pid) || (int) $pid <= 0) {
            $pid = $GLOBALS['pid'] ?? 0; // globals.php copies the chart's pid there on both lines
        }
        return is_numeric($pid) ? max(0, (int) $pid) : 0;
    }

    /** The signed-in user's login name ('' when none). */
    public static function user(): string
    {
        $user = self::get('authUser');
        return is_scalar($user) ? (string) $user : '';
    }

    public static function csrfToken(string $subject = 'default'): string
    {
        $class = self::CSRF;
        return (string) (self::takesSession($class, 'collectCsrfToken')
            ? $class::collectCsrfToken(self::session(), $subject)
            : $class::collectCsrfToken($subject));
    }

    public static function verifyCsrf(string $token, string $subject = 'default'): bool
    {
        $class = self::CSRF;
        return (bool) (self::takesSession($class, 'verifyCsrfToken')
            ? $class::verifyCsrfToken($token, self::session(), $subject)
            : $class::verifyCsrfToken($token, $subject));
    }

    /**
     * Whether a CsrfUtils-like method wants the session object: one of its parameters is typed with a
     * SessionInterface (8.x: `collectCsrfToken(SessionInterface $session, string $subject)`,
     * `verifyCsrfToken($token, SessionInterface $session, string $subject)`; 7.0.x: no such parameter).
     */
    public static function takesSession(string $class, string $method): bool
    {
        if (!method_exists($class, $method)) {
            return false;
        }
        foreach ((new \ReflectionMethod($class, $method))->getParameters() as $parameter) {
            $type = $parameter->getType();
            $names = $type instanceof \ReflectionNamedType ? [$type->getName()]
                : ($type instanceof \ReflectionUnionType ? array_map(static fn($t) => (string) $t, $type->getTypes()) : []);
            foreach ($names as $name) {
                if (str_ends_with($name, 'SessionInterface')) {
                    return true;
                }
            }
        }
        return false;
    }
}
