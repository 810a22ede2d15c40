<?php

/**
 * Stand-ins for the OpenEMR and Symfony classes the module touches, with the signatures of OpenEMR 7.0.x
 * (src/Events/..., src/Services/Globals/..., src/Common/...). Only for the module's unit tests: the real
 * classes come from OpenEMR at run time.
 */

namespace Symfony\Contracts\EventDispatcher {
    class Event
    {
    }
}

namespace Symfony\Component\EventDispatcher {
    /** symfony/event-dispatcher GenericEvent: what OpenEMR's Twig fireEvent() dispatches. */
    class GenericEvent extends \Symfony\Contracts\EventDispatcher\Event
    {
        public function __construct(protected mixed $subject = null, protected array $arguments = [])
        {
        }

        public function getSubject(): mixed
        {
            return $this->subject;
        }

        public function getArguments(): array
        {
            return $this->arguments;
        }
    }

    interface EventDispatcherInterface
    {
        public function addListener(string $eventName, callable|array $listener, int $priority = 0);

        public function dispatch(object $event, ?string $eventName = null): object;
    }

    class EventDispatcher implements EventDispatcherInterface
    {
        /** @var array<string, list<callable>> */
        public array $listeners = [];

        public function addListener(string $eventName, callable|array $listener, int $priority = 0)
        {
            $this->listeners[$eventName][] = $listener;
        }

        public function dispatch(object $event, ?string $eventName = null): object
        {
            foreach ($this->listeners[$eventName ?? get_class($event)] ?? [] as $listener) {
                $listener($event);
            }
            return $event;
        }
    }
}

namespace OpenEMR\Core {
    abstract class AbstractModuleActionListener
    {
        public function __construct()
        {
        }

        abstract public function moduleManagerAction($methodName, $modId, string $currentActionStatus = 'Success'): string;

        abstract protected static function getModuleNamespace(): string;

        abstract protected static function initListenerSelf();
    }
}

namespace OpenEMR\Services {
    class BaseService
    {
    }
}

namespace OpenEMR\Services\Globals {
    /** src/Services/Globals/GlobalSetting.php as of 7.0.x (html_display_section + field options). */
    class GlobalSetting
    {
        const DATA_TYPE_BOOL = "bool";
        const DATA_TYPE_ENCRYPTED = "encrypted";
        const DATA_TYPE_TEXT = "text";
        const DATA_TYPE_HTML_DISPLAY_SECTION = "html_display_section";
        const DATA_TYPE_MULTI_SORTED_LIST_SELECTOR = "multi_sorted_list_selector";
        const DATA_TYPES_WITH_OPTIONS = [self::DATA_TYPE_MULTI_SORTED_LIST_SELECTOR, self::DATA_TYPE_HTML_DISPLAY_SECTION];
        const DATA_TYPE_FIELD_OPTIONS_SUPPORTED = [
            self::DATA_TYPE_MULTI_SORTED_LIST_SELECTOR => [self::DATA_TYPE_OPTION_LIST_ID],
            self::DATA_TYPE_HTML_DISPLAY_SECTION => [self::DATA_TYPE_OPTION_RENDER_CALLBACK],
        ];
        const DATA_TYPE_OPTION_LIST_ID = 'list_id';
        const DATA_TYPE_OPTION_RENDER_CALLBACK = 'render_callback';

        protected $label = null;
        protected $dataType = null;
        protected $default = null;
        protected $description = null;
        protected $isUserSetting = false;
        protected $fieldOptions = [];

        public function __construct($label, $dataType, $default, $description, $isUserSetting = false)
        {
            $this->label = $label;
            $this->dataType = $dataType;
            $this->default = $default;
            $this->description = $description;
            $this->isUserSetting = $isUserSetting;
        }

        public function format()
        {
            $result = [$this->label, $this->dataType, $this->default, $this->description];
            if (!empty($this->fieldOptions)) {
                $result[] = $this->fieldOptions;
            }
            return $result;
        }

        public function isUserSetting()
        {
            return $this->isUserSetting;
        }

        public function getFieldOptions(): array
        {
            return $this->fieldOptions;
        }

        public function addFieldOption($key, $option)
        {
            if (!in_array($this->dataType, self::DATA_TYPES_WITH_OPTIONS)) {
                throw new \InvalidArgumentException("Data type does not support field options");
            }
            if (!in_array($key, self::DATA_TYPE_FIELD_OPTIONS_SUPPORTED[$this->dataType])) {
                throw new \InvalidArgumentException("Data type does not support field option key " . $key);
            }
            $this->fieldOptions[$key] = $option;
        }
    }

    class GlobalsService
    {
        /** @var array<string, array<string, GlobalSetting>> */
        public array $sections = [];

        /** Like src/Services/Globals/GlobalsService.php (7.0.3 and 8.1): a second createSection() throws. */
        public function createSection($section, $beforeSection = false)
        {
            if (isset($this->sections[$section])) {
                throw new \Exception("Section already exists and cannot be created");
            }
            $this->sections[$section] = [];
        }

        public function getGlobalsMetadata()
        {
            return $this->sections;
        }

        public function appendToSection($section, $key, GlobalSetting $global)
        {
            $this->sections[$section][$key] = $global;
        }
    }
}

namespace OpenEMR\Events\Globals {
    use OpenEMR\Services\Globals\GlobalsService;
    use Symfony\Contracts\EventDispatcher\Event;

    class GlobalsInitializedEvent extends Event
    {
        const EVENT_HANDLE = 'globals.initialized';

        public function __construct(private GlobalsService $globalsService)
        {
        }

        public function getGlobalsService(): GlobalsService
        {
            return $this->globalsService;
        }
    }
}

namespace OpenEMR\Events\Core {
    use Symfony\Contracts\EventDispatcher\Event;

    class TwigEnvironmentEvent extends Event
    {
        const EVENT_CREATED = 'twigEnvironment.created';

        public function __construct(private $twig)
        {
        }

        public function getTwigEnvironment()
        {
            return $this->twig;
        }
    }
}

namespace OpenEMR\Events\Patient {
    use Symfony\Contracts\EventDispatcher\Event;

    class PatientUpdatedEvent extends Event
    {
        const EVENT_HANDLE = 'patient.updated';

        public function __construct(private $dataBeforeUpdate, private $newPatientData)
        {
        }

        public function getDataBeforeUpdate()
        {
            return $this->dataBeforeUpdate;
        }

        public function getNewPatientData()
        {
            return $this->newPatientData;
        }
    }
}

namespace OpenEMR\Events\Patient {
    /** src/Events/Patient/PatientUpdatedEventAux.php (fired by demographics_save.php on 7.0.3 and 8.1). */
    class PatientUpdatedEventAux extends \Symfony\Contracts\EventDispatcher\Event
    {
        const EVENT_HANDLE = 'patient.updated.aux';

        public function __construct(private $pid, private $updatedPatientData)
        {
        }

        public function getUpdatedPatientData()
        {
            return array_merge($this->updatedPatientData, ['pid' => $this->pid]);
        }
    }
}

namespace OpenEMR\Events\Services {
    use OpenEMR\Services\BaseService;
    use Symfony\Contracts\EventDispatcher\Event;

    class ServiceSaveEvent extends Event
    {
        const EVENT_PRE_SAVE = 'service.save.pre';
        const EVENT_POST_SAVE = 'service.save.post';

        public function __construct(private BaseService $service, private array $saveData)
        {
        }

        public function getService(): BaseService
        {
            return $this->service;
        }

        public function getSaveData()
        {
            return $this->saveData;
        }
    }
}

namespace OpenEMR\Events\Patient\Summary\Card {
    use Symfony\Contracts\EventDispatcher\Event;

    interface CardInterface
    {
        public function getIdentifier(): string;

        public function getTemplateFile(): string;

        public function getTemplateVariables(): array;

        public function getAcl(): array;
    }

    class CardModel implements CardInterface
    {
        private $identifier = '';
        private $title = '';
        private $acl = [];
        private $templateFile;
        private $templateVariables;
        private $add = true;
        private $edit = false;
        private $collapse = true;
        private $initiallyCollapsed = false;
        private $dispatcher;

        public function __construct(array $opts)
        {
            foreach ($opts as $prop => $val) {
                if (property_exists($this, $prop)) {
                    $this->$prop = $val;
                }
            }
        }

        public function getIdentifier(): string
        {
            return $this->identifier;
        }

        public function getTitle(): string
        {
            return $this->title;
        }

        public function getAcl(): array
        {
            return $this->acl;
        }

        public function getTemplateFile(): string
        {
            return $this->templateFile;
        }

        public function getTemplateVariables(): array
        {
            return $this->templateVariables;
        }

        public function isInitiallyCollapsed(): bool
        {
            return $this->initiallyCollapsed;
        }

        public function canCollapse(): bool
        {
            return $this->collapse;
        }
    }

    class SectionEvent extends Event
    {
        const EVENT_HANDLE = 'section.render';
        private array $cards = [];

        public function __construct(private string $section)
        {
        }

        public function getSection(): string
        {
            return $this->section;
        }

        public function getCards(): array
        {
            return $this->cards;
        }

        public function addCard(CardInterface $card, $position = null): void
        {
            foreach ($this->cards as $existing) {
                if ($existing->getIdentifier() === $card->getIdentifier()) {
                    throw new \DomainException("Card {$card->getIdentifier()} is not unique in current list");
                }
            }
            $this->cards[] = $card;
        }
    }
}

namespace OpenEMR\Common\Csrf {
    /**
     * CsrfUtils with OpenEMR 7.0.x's signatures (no session object). The 8.x signatures
     * (collectCsrfToken(SessionInterface $session, string $subject), verifyCsrfToken($token, SessionInterface
     * $session, string $subject)) are checked against fixtures in OpenEmrSessionTest; both run for real in
     * tests/openemr.
     */
    class CsrfUtils
    {
        public static string $token = 'csrf-test-token';

        public static function collectCsrfToken($subject = 'default')
        {
            return self::$token;
        }

        public static function verifyCsrfToken($token, $subject = 'default')
        {
            return hash_equals(self::$token, (string) $token);
        }
    }
}

namespace OpenEMR\Common\Acl {
    class AclMain
    {
        public static bool $allow = true;

        public static function aclCheckCore($section, $value, $user = '', $return_value = '')
        {
            return self::$allow;
        }
    }
}

namespace OpenEMR\Common\Uuid {
    class UuidRegistry
    {
        public static function uuidToString($uuidBytes)
        {
            $hex = bin2hex($uuidBytes);
            return substr($hex, 0, 8) . '-' . substr($hex, 8, 4) . '-' . substr($hex, 12, 4) . '-' . substr($hex, 16, 4) . '-' . substr($hex, 20);
        }
    }
}

namespace OpenEMR\Events\PatientPortal {
    use Symfony\Component\EventDispatcher\GenericEvent;

    /** src/Events/PatientPortal/RenderEvent.php (7.0.x): names only; the portal dispatches GenericEvent. */
    class RenderEvent extends GenericEvent
    {
        const EVENT_SECTION_RENDER_POST = "home.section.render.post";
        const EVENT_SCRIPTS_RENDER_PRE = 'home.scripts.render.pre';
        const EVENT_DASHBOARD_INJECT_CARD = "home.dashboard.inject.card";
        const EVENT_DASHBOARD_RENDER_SCRIPTS = "home.dashboard.render.scripts";
    }
}

namespace OpenEMR\Core {
    use Symfony\Component\EventDispatcher\EventDispatcherInterface;

    class Kernel
    {
        public function __construct(private EventDispatcherInterface $dispatcher)
        {
        }

        public function getEventDispatcher(): EventDispatcherInterface
        {
            return $this->dispatcher;
        }

        public function isDev()
        {
            return false;
        }
    }
}

namespace OpenEMR\Common\Twig {
    use OpenEMR\Core\Kernel;

    /**
     * src/Common/Twig/TwigContainer.php (7.0.x): templates/ plus an extra path, autoescape OFF, OpenEMR's
     * escaping filters. Here on Debian's php-twig with the same filter names, so templates render for real.
     */
    class TwigContainer
    {
        private $paths = [];
        private $kernel = null;

        public function __construct(?string $path = null, ?Kernel $kernel = null)
        {
            if (!empty($path)) {
                $this->addPath($path);
            }
            $this->kernel = $kernel;
        }

        public function addPath(string $path): void
        {
            $this->paths[] = $path;
        }

        public function getTwig(): \Twig\Environment
        {
            // tests/stubs/templates: a minimal stand-in of OpenEMR's patient/card/card_base.html.twig (same blocks
            // and variables, none of its markup), so the module's card template renders here.
            $paths = array_merge($this->paths, [__DIR__ . '/templates']);
            $twig = new \Twig\Environment(new \Twig\Loader\FilesystemLoader($paths), ['autoescape' => false, 'strict_variables' => false]);
            foreach (['text' => 'text', 'attr' => 'attr', 'xl' => 'xl', 'xlt' => 'xlt', 'xla' => 'xla', 'attr_url' => 'attr_url', 'js_escape' => 'json_encode'] as $name => $fn) {
                $twig->addFilter(new \Twig\TwigFilter($name, $fn));
            }
            return $twig;
        }
    }
}

namespace OpenEMR\Common\Crypto {
    /**
     * CryptoGen with 7.0.x's signatures. Stand-in cipher: "006" + base64. Like the real one, a value without a
     * known version prefix does not decrypt (false) and is reported; cryptCheckStandard() checks the prefix.
     */
    class CryptoGen
    {
        /** How often decryptStandard() met a value it cannot decrypt (the real one logs each time). */
        public static int $failures = 0;

        public function encryptStandard($value, $customPassword = null, $keySource = 'drive')
        {
            return '006' . base64_encode((string) $value);
        }

        public function decryptStandard(?string $value, ?string $customPassword = null, string $keySource = 'drive', ?int $minimumVersion = null): false|string
        {
            if (empty($value)) {
                return "";
            }
            if (!str_starts_with($value, '006')) {
                self::$failures++; // OpenEMR: error_log("OpenEMR Error : Decryption is not working ...")
                return false;
            }
            return (string) base64_decode(substr($value, 3), true);
        }

        public function cryptCheckStandard(?string $value): bool
        {
            return !empty($value) && preg_match('/^00[1-6]/', $value) === 1;
        }
    }
}

namespace {
    function xl($s)
    {
        return $s;
    }

    function xlt($s)
    {
        return htmlspecialchars($s, ENT_NOQUOTES);
    }

    function text($s)
    {
        return htmlspecialchars((string) $s, ENT_NOQUOTES);
    }

    function attr($s)
    {
        return htmlspecialchars((string) $s, ENT_QUOTES);
    }

    function xla($s)
    {
        return attr($s);
    }

    function attr_url($s)
    {
        return attr(urlencode((string) $s));
    }
}
