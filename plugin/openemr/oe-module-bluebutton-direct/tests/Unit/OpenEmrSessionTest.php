<?php

namespace OpenEMR\Modules\BlueButtonDirect\Tests;

use OpenEMR\Modules\BlueButtonDirect\OpenEmrSession;
use PHPUnit\Framework\TestCase;

/**
 * Which CsrfUtils signature this OpenEMR has is read from the method's parameter types, never the version.
 * The two fixtures below copy the signatures of src/Common/Csrf/CsrfUtils.php in 7.0.3 and 8.1.
 */
final class OpenEmrSessionTest extends TestCase
{
    protected function tearDown(): void
    {
        unset($_SESSION['pid'], $_SESSION['authUser'], $_SESSION['bbdirect_x'], $GLOBALS['pid']);
    }

    public function testThe81SignaturesTakeTheSession(): void
    {
        $this->assertTrue(OpenEmrSession::takesSession(Csrf81::class, 'collectCsrfToken'));
        $this->assertTrue(OpenEmrSession::takesSession(Csrf81::class, 'verifyCsrfToken'));
    }

    public function testThe703SignaturesDoNot(): void
    {
        $this->assertFalse(OpenEmrSession::takesSession(Csrf703::class, 'collectCsrfToken'));
        $this->assertFalse(OpenEmrSession::takesSession(Csrf703::class, 'verifyCsrfToken'));
        $this->assertFalse(OpenEmrSession::takesSession(Csrf703::class, 'noSuchMethod'));
    }

    public function testWithout81SessionClassesTheTopLevelSessionKeysAreUsed(): void
    {
        $this->assertNull(OpenEmrSession::session(), 'no SessionWrapperFactory in this OpenEMR (7.0.x)');
        $_SESSION['pid'] = '12';
        $_SESSION['authUser'] = 'dr';
        $this->assertSame(12, OpenEmrSession::pid());
        $this->assertSame('dr', OpenEmrSession::user());
        unset($_SESSION['pid']);
        $GLOBALS['pid'] = 9;
        $this->assertSame(9, OpenEmrSession::pid(), "globals.php's pid when the session has none");
        OpenEmrSession::set('bbdirect_x', ['a' => 1]);
        $this->assertSame(['a' => 1], OpenEmrSession::get('bbdirect_x'));
        OpenEmrSession::remove('bbdirect_x');
        $this->assertNull(OpenEmrSession::get('bbdirect_x'));
    }

    public function testCsrfGoesThroughOpenEmrsHelper(): void
    {
        $this->assertSame('csrf-test-token', OpenEmrSession::csrfToken());
        $this->assertTrue(OpenEmrSession::verifyCsrf('csrf-test-token'));
        $this->assertFalse(OpenEmrSession::verifyCsrf('forged'));
    }
}

interface SessionInterface
{
}

/** CsrfUtils signatures of OpenEMR 8.1 (src/Common/Csrf/CsrfUtils.php). */
final class Csrf81
{
    public static function collectCsrfToken(SessionInterface $session, string $subject = 'default'): string
    {
        return '';
    }

    public static function verifyCsrfToken($token, SessionInterface $session, string $subject = 'default'): bool
    {
        return false;
    }
}

/** CsrfUtils signatures of OpenEMR 7.0.3. */
final class Csrf703
{
    public static function collectCsrfToken($subject = 'default')
    {
        return '';
    }

    public static function verifyCsrfToken($token, $subject = 'default')
    {
        return false;
    }
}
